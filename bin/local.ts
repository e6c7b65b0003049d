#!/usr/bin/env node
/**
 * `npm start`: the whole service on this machine, no AWS account. Options: PORT (default
 * 8787) and --data-dir DIR (default: in memory). Ctrl-C stops it cleanly.
 */
import { parseArgs } from 'node:util';
import { startLocalRuntime } from '../local/server';

// The AWS SDK warns that its 2027 releases will need Node 22; the runtime works on Node 20.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (!w.message.includes('NodeVersionSupportWarning') && w.name !== 'NodeVersionSupportWarning') console.warn(w);
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    console.log('Usage: npm start [-- --data-dir DIR]   (PORT=8787 by default)');
    return;
  }
  const port = Number(process.env.PORT ?? 8787);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number; it is '${process.env.PORT}'.`);
  const started = Date.now();
  const rt = await startLocalRuntime({ port, ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}) });
  const admin = rt.principals.find((p) => p.admin) ?? rt.principals[0]!;
  const store = values['data-dir'] ? `embedded DynamoDB in ${values['data-dir']}` : 'embedded DynamoDB in memory (use --data-dir DIR to keep data)';
  console.log(
    [
      `Logrelay local runtime listening on ${rt.url} (ready in ${Date.now() - started} ms)`,
      `  routes: ${rt.system.routes.length} from the synthesized stack; tables: ${rt.system.tables.map((t) => t.name).join(', ')}`,
      `  store:  ${store}`,
      `  principals: ${rt.credentialsPath}${rt.credentialsCreated ? ' (created now)' : ''}; ${rt.principals.map((p) => `${p.name}${p.admin ? ' (admin)' : ''}`).join(', ')}`,
      '',
      'Every request must be signed with AWS SigV4 (service execute-api, any region). Try:',
      `  curl --aws-sigv4 "aws:amz:us-east-1:execute-api" --user ${admin.accessKeyId}:${admin.secretAccessKey} \\`,
      `    -H 'content-type: application/json' -d '{"logId":"hello"}' ${rt.url}/logs`,
      `  curl --aws-sigv4 "aws:amz:us-east-1:execute-api" --user ${admin.accessKeyId}:${admin.secretAccessKey} ${rt.url}/logs/hello`,
      '',
      'One line per request follows (method, route, status, time). Ctrl-C stops.',
    ].join('\n'),
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping...`);
    rt.close().then(
      () => {
        console.log('stopped.');
        process.exit(0);
      },
      (e: unknown) => {
        console.error(e);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((e: unknown) => {
  console.error(`logrelay: ${(e as Error).message}`);
  process.exit(1);
});
