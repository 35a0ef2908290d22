import type { Model } from '@kubernetes-models/base';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';

// Every kind Herald's manifests may contain, with the schema it is validated against. A kind
// not listed fails the test rather than passing unchecked.
const MODELS = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication,
} as const;

export type Rendered = {
  namespaces: Namespace[];
  configMaps: ConfigMap[];
  secrets: Secret[];
  services: Service[];
  deployments: Deployment[];
  jobs: Job[];
  pdbs: PodDisruptionBudget[];
  hpas: HorizontalPodAutoscaler[];
  networkPolicies: NetworkPolicy[];
  scaledObjects: ScaledObject[];
  triggerAuthentications: TriggerAuthentication[];
  all: Array<Model<unknown>>;
};

/** Validates every rendered document against its Kubernetes (or KEDA) schema and sorts them by kind. */
export function validateAll(docs: Array<Record<string, unknown>>, where: string): Rendered {
  const rendered: Rendered = { namespaces: [], configMaps: [], secrets: [], services: [], deployments: [], jobs: [], pdbs: [], hpas: [], networkPolicies: [], scaledObjects: [], triggerAuthentications: [], all: [] };
  for (const doc of docs) {
    const key = `${String(doc.apiVersion)}/${String(doc.kind)}`;
    const name = `${where}: ${String(doc.kind)} ${String((doc.metadata as { name?: string } | undefined)?.name)}`;
    const Model = MODELS[key as keyof typeof MODELS];
    if (!Model) throw new Error(`${name}: no schema for ${key}; add it to deploy/test/k8s-models.ts`);
    const model = new Model(doc as never);
    try {
      model.validate();
    } catch (error) {
      throw new Error(`${name} does not match the ${key} schema: ${(error as Error).message}`);
    }
    rendered.all.push(model as Model<unknown>);
    if (model instanceof Namespace) rendered.namespaces.push(model);
    else if (model instanceof ConfigMap) rendered.configMaps.push(model);
    else if (model instanceof Secret) rendered.secrets.push(model);
    else if (model instanceof Service) rendered.services.push(model);
    else if (model instanceof Deployment) rendered.deployments.push(model);
    else if (model instanceof Job) rendered.jobs.push(model);
    else if (model instanceof PodDisruptionBudget) rendered.pdbs.push(model);
    else if (model instanceof HorizontalPodAutoscaler) rendered.hpas.push(model);
    else if (model instanceof NetworkPolicy) rendered.networkPolicies.push(model);
    else if (model instanceof ScaledObject) rendered.scaledObjects.push(model);
    else if (model instanceof TriggerAuthentication) rendered.triggerAuthentications.push(model);
  }
  return rendered;
}
