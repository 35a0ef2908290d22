/** One line per step, tagged with the service that took it, so the story reads top to bottom. */
export function say(who: 'demo' | 'orders' | 'herald' | 'coupons' | 'points', text: string): void {
  const colour = { demo: 1, orders: 36, herald: 35, coupons: 33, points: 32 }[who];
  const tag = process.stdout.isTTY ? `\x1b[${colour}m${who.padEnd(7)}\x1b[0m` : who.padEnd(7);
  console.log(`${tag} ${text}`);
}
