import * as fs from 'node:fs';
import * as path from 'node:path';

export default async function globalTeardown(): Promise<void> {
  const file = process.env.RXCOMM_TEST_CERTS;
  if (file) fs.rmSync(path.dirname(file), { recursive: true, force: true });
}
