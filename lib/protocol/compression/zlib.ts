/**
 * zlib as Dask writes it (Python's `zlib.compress`, level 6): a zlib stream (RFC 1950),
 * which declares no size. Pure JS here (`fflate`) for the browser build; Node installs
 * its own zlib (`platform/node.ts`), several times faster. Output is counted as it is
 * made and refused past the limit, so a small stream cannot inflate into a large one.
 */
import { Unzlib, zlibSync } from 'fflate';
import { ProtocolError } from '../../errors';

export function zlibDecompress(data: Uint8Array, limit: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let made = 0;
  let ended = false;
  const inflater = new Unzlib((chunk, final) => {
    made += chunk.length;
    if (made > limit) throw new ProtocolError(`a zlib payload inflates past the limit of ${limit} bytes`);
    chunks.push(chunk);
    if (final) ended = true;
  });
  try {
    inflater.push(data, true);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError(`a zlib payload does not inflate: ${(err as Error).message}`, { cause: err });
  }
  if (!ended) throw new ProtocolError('a zlib payload ends before its stream does');
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(made);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

export function zlibCompress(data: Uint8Array): Uint8Array {
  return zlibSync(data, { level: 6 });
}
