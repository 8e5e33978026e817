// Runs a WASI preview1 command under node (same minimal fd_read/fd_write
// host as the Phase worker offers), timing compile + instantiate + _start.
// Usage: node node_run.mjs <module.wasm> <N> <runs>   (also runs under deno)
import { readFileSync } from "node:fs";
const [path, nText, runsText] = process.argv.slice(2);
const bytes = readFileSync(path);
const input = new Uint8Array(new Uint32Array([Number(nText)]).buffer);
const times = [];
let result = 0n;
for (let i = 0; i < Number(runsText); i++) {
  const t0 = performance.now();
  const box = { memory: undefined };
  let off = 0;
  const wasi = {
    fd_read: (_fd, iovs, _n, nread) => {
      const v = new DataView(box.memory.buffer);
      const ptr = v.getUint32(iovs, true);
      const len = Math.min(v.getUint32(iovs + 4, true), input.length - off);
      new Uint8Array(box.memory.buffer, ptr, len).set(input.subarray(off, off + len));
      off += len;
      v.setUint32(nread, len, true);
      return 0;
    },
    fd_write: (_fd, iovs, _n, nwritten) => {
      const v = new DataView(box.memory.buffer);
      const ptr = v.getUint32(iovs, true);
      const len = v.getUint32(iovs + 4, true);
      result = new DataView(box.memory.buffer, ptr, len).getBigUint64(0, true);
      v.setUint32(nwritten, len, true);
      return 0;
    },
  };
  const { instance } = await WebAssembly.instantiate(bytes, { wasi_snapshot_preview1: wasi });
  box.memory = instance.exports.memory;
  instance.exports._start();
  times.push(performance.now() - t0);
}
console.log(JSON.stringify({ result: result.toString(), times }));
