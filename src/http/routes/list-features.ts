import { FeatureList } from '../../contracts/features';
import { listFeatures as list, type FeatureState } from '../../modules/features/features';
import { defineRoute } from '../define-route';

export const asFeature = (f: FeatureState) => ({ ...f, changedAt: f.changedAt.toISOString() });

export const listFeatures = defineRoute({
  method: 'GET',
  url: '/api/features',
  summary: 'Every feature (kill switch) with its state, and who changed it last and why (DPO, admin)',
  tags: ['features'],
  access: { permission: 'feature.read' },
  // No feature of its own: the switches are never switched off.
  response: FeatureList,
  egress: 'none',
  handler: async ({ scope }) => ({ features: (await list(scope)).map(asFeature) }),
});
