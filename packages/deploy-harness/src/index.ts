export {
  DEPLOY_HAPROXY_CFG,
  READ_ONLY_LISTENER,
  READ_WRITE_LISTENER,
  renderDeployHaproxyConfig,
  renderHaproxyConfig,
} from './haproxy-config.js';
export type { HaproxyConfigOptions, HaproxyNode } from './haproxy-config.js';
export { HaproxyProcess } from './haproxy-process.js';
export type { HaproxyProcessOptions, ServerState } from './haproxy-process.js';
export { requireTool, ToolMissingError } from './tools.js';
