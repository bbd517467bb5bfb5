// docker-modem, dockerode's transport, logs the options of every request it sends — headers
// included — under the `debug` namespace `modem`. A pull with credentials carries them in
// X-Registry-Auth (base64 JSON: username and password), so `DEBUG=modem` or `DEBUG=*` would
// write registry credentials to the agent's stderr, which ends up in the node's logs.
import createDebug from 'debug';

/**
 * Turns the `modem` namespace off, leaving every other namespace DEBUG enabled as it was. The
 * Docker runtime calls it before each pull that carries credentials, so a namespace enabled
 * after start-up cannot bring the dump back. Returns whether it had to (the namespace was on).
 */
export function silenceModemDebug(): boolean {
  if (!createDebug.enabled('modem')) return false;
  const enabled = createDebug.disable();
  createDebug.enable(enabled === '' ? '-modem' : `${enabled},-modem`);
  return true;
}
