/**
 * Group commit for concurrent writes. A write submitted while fewer than `maxInFlight` batches
 * are running goes out at once (no added latency at low load); writes submitted while they run
 * wait and leave together as the next batch, one statement and one commit for all of them.
 * `run` answers each input of a batch on its own, so one bad input cannot fail its neighbours.
 */
export class WriteBatcher<In, Out> {
  private queue: Array<{ input: In; resolve: (out: Out) => void; reject: (err: unknown) => void }> = [];
  private inFlight = 0;

  constructor(
    private readonly run: (inputs: In[]) => Promise<Out[]>,
    private readonly options: {
      maxInFlight: number;
      maxBatch: number;
      /** A batch stops growing once its inputs weigh this much (e.g. bytes of a statement). */
      maxWeight?: number;
      weight?: (input: In) => number;
    },
  ) {}

  submit(input: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.take();
      this.inFlight++;
      this.run(batch.map((b) => b.input))
        .then(
          (outs) => batch.forEach((b, i) => (i < outs.length ? b.resolve(outs[i] as Out) : b.reject(new Error('write batch answered too few inputs')))),
          (err: unknown) => batch.forEach((b) => b.reject(err)),
        )
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }

  private take() {
    const { maxBatch, maxWeight = Infinity, weight } = this.options;
    let n = 0;
    let total = 0;
    while (n < this.queue.length && n < maxBatch) {
      const w = weight ? weight((this.queue[n] as { input: In }).input) : 0;
      if (n > 0 && total + w > maxWeight) break;
      total += w;
      n++;
    }
    return this.queue.splice(0, n);
  }
}
