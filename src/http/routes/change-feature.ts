import { ChangeFeatureInput, Feature, FeatureNameParams } from '../../contracts/features';
import { setFeature } from '../../modules/features/features';
import { defineRoute } from '../define-route';
import { asFeature } from './list-features';

export const changeFeature = defineRoute({
  method: 'PUT',
  url: '/api/features/:name',
  summary:
    'Switch a feature on or off, with a reason (DPO, admin). Every process follows within a second. After an automatic kill only the DPO may switch it back on (403 dpo_required).',
  tags: ['features'],
  access: { permission: 'feature.manage' },
  params: FeatureNameParams,
  body: ChangeFeatureInput,
  response: Feature,
  egress: 'none',
  handler: async ({ scope, params, body }) => asFeature(await setFeature(scope, params.name, body.enabled, body.reason)),
});
