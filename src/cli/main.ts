// Entry point of the `prepull` command: parses the command line and dispatches to a subcommand,
// loading each subcommand's code only when it runs (a DaemonSet pays for every module it loads).
import { PrepullError, isPrepullError } from '../errors.ts';
import { version } from './build-info.ts';
import { type Output, stdio } from './io.ts';

export { version };

export const HELP = `prepull — puts container images onto Kubernetes nodes before Pods need them, keeps
them there, and reports what each node holds.

Usage:
  prepull <command> [flags]
  prepull --help | -h
  prepull --version | -V

Commands:
  sync        reconcile this machine's container runtime with PrePull files, without a cluster
              (\`prepull sync --help\`)
  agent       the in-cluster DaemonSet: watch PrePulls through the Kubernetes API, keep this
              node's images, report NodeImageCache status and Events (\`prepull agent --help\`)
  controller  the in-cluster Deployment: PrePull status from every node's report, paced
              rollouts, node labels and taints; one replica leads (\`prepull controller --help\`)
  audit       find, from manifests, the containers whose image no PrePull keeps on their nodes
              (\`prepull audit --help\`)
  generate    write a PrePull listing every image the manifests use (\`prepull generate --help\`)

Flags:
  -h, --help      print this help and exit
  -V, --version   print the version and exit
`;

export function run(argv: readonly string[], io: Output = stdio): number {
  try {
    const [first] = argv;
    if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
      io.out(HELP);
      return first === undefined ? 2 : 0;
    }
    if (first === '--version' || first === '-V') {
      io.out(`${version()}\n`);
      return 0;
    }
    const what = first.startsWith('-') ? `unknown flag ${first}` : `unknown command ${first}`;
    throw new PrepullError('ERR_USAGE', `${what}; run \`prepull --help\` for the commands`);
  } catch (error) {
    if (isPrepullError(error)) {
      io.err(`prepull: ${error.message} (${error.code})\n`);
      return 2;
    }
    throw error;
  }
}

const COMMANDS = new Set(['sync', 'agent', 'controller', 'audit', 'generate']);

export async function main(argv: readonly string[], io: Output = stdio): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || !COMMANDS.has(command)) return run(argv, io);
  try {
    if (command === 'audit' || command === 'generate') {
      const { runAudit, runGenerate } = await import('./audit.ts');
      return command === 'audit' ? await runAudit(rest, io, version()) : runGenerate(rest, io);
    }
    if (command === 'agent') {
      const { runAgent } = await import('./agent.ts');
      return await runAgent(rest, io);
    }
    if (command === 'controller') {
      const { runController } = await import('./controller.ts');
      return await runController(rest, io);
    }
    const { runSync } = await import('./sync.ts');
    return await runSync(rest, io);
  } catch (error) {
    if (isPrepullError(error)) {
      io.err(`prepull ${command}: ${error.message} (${error.code})\n`);
      return error.code === 'ERR_USAGE' ? 2 : 1;
    }
    throw error;
  }
}
