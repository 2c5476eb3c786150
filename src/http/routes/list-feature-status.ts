import { FeatureStatusList } from '../../contracts/features';
import { FEATURE_NAMES } from '../../modules/features/features';
import { defineRoute } from '../define-route';

export const listFeatureStatus = defineRoute({
  method: 'GET',
  url: '/api/features/status',
  summary: "Which features are on now (this process's copy, current within a second): the web app greys what is off",
  tags: ['features'],
  access: { public: true, reason: 'which parts of the service are on is no secret; names and on/off only, no reasons or people' },
  // No feature of its own: it is how the app learns what is off.
  response: FeatureStatusList,
  egress: 'none',
  handler: async ({ deps }) => ({ features: FEATURE_NAMES.map((name) => ({ name, enabled: deps.features.isEnabledNow(name) })) }),
});
