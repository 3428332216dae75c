/**
 * Status output with nobody subscribed: failures are printed, repeats collapsed into a
 * count per window; and `NODE_DEBUG=rxcomm` prints every event as it happens.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import 'rxcomm'; // the Node entry: status goes to process warnings and util.debuglog
import { REPEAT_WINDOW_MS, reportStatus } from '../../lib/status';

const run = promisify(execFile);

describe('status output', () => {
  afterEach(() => {
    jest.useRealTimers();
    jest.restoreAllMocks();
  });

  it('should print the first unobserved failure, then one count per window, not one line per event', () => {
    jest.useFakeTimers();
    const warnings = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    const rejected = (i: number) =>
      reportStatus({ type: 'listen:rejected', listenAddress: 'tcp://127.0.0.1:1', peerAddress: `tcp://127.0.0.1:${i}`, error: new Error('bad handshake') });
    for (let i = 0; i < 60_000; i++) rejected(i);
    expect(warnings).toHaveBeenCalledTimes(1);
    expect(String(warnings.mock.calls[0][0])).toMatch(/^rxcomm listen:rejected .*peerAddress=tcp:\/\/127\.0\.0\.1:0: bad handshake$/);
    jest.advanceTimersByTime(REPEAT_WINDOW_MS);
    expect(warnings).toHaveBeenCalledTimes(2);
    expect(String(warnings.mock.calls[1][0])).toBe('rxcomm listen:rejected: 59999 more in the last 10 s');
    // a quiet window later, the next one is printed at once again
    jest.advanceTimersByTime(REPEAT_WINDOW_MS);
    rejected(1);
    expect(warnings).toHaveBeenCalledTimes(3);
  });

  it('should print every event with NODE_DEBUG=rxcomm (Node util.debuglog)', async () => {
    const dist = path.join(__dirname, '../../dist/index.js');
    const script = `
      const { connect } = require(${JSON.stringify(dist)});
      connect('tcp://127.0.0.1:1', { timeout: 200 }).subscribe({ error: () => undefined });
    `;
    const { stderr } = await run(process.execPath, ['-e', script], { env: { ...process.env, NODE_DEBUG: 'rxcomm' }, timeout: 30_000 });
    expect(stderr).toMatch(/^RXCOMM \d+: connect:retry address=tcp:\/\/127\.0\.0\.1:1 attempt=1 delay=[\d.]+: Could not connect to tcp:\/\/127\.0\.0\.1:1: ECONNREFUSED$/m);
    expect(stderr).toMatch(/^RXCOMM \d+: connect:failed address=tcp:\/\/127\.0\.0\.1:1: Timed out trying to connect to tcp:\/\/127\.0\.0\.1:1 after 0\.2 s$/m);
    const quiet = await run(process.execPath, ['-e', script], { env: { ...process.env, NODE_DEBUG: '' }, timeout: 30_000 });
    expect(quiet.stderr).toBe('');
  });
});
