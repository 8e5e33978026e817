import { assertEquals, assertThrows } from "../testing/mod.ts";
import { UsageError } from "../core/mod.ts";
import { parseIntFlag } from "./flags.ts";

Deno.test("parseIntFlag: decimal digits within the range, nothing Number() would also take", () => {
  assertEquals(parseIntFlag("8080", "port", { min: 0, max: 65535 }), 8080);
  assertEquals(parseIntFlag("0", "port", { min: 0, max: 65535 }), 0);
  assertEquals(parseIntFlag(undefined, "port"), undefined);
  for (
    const bad of ["0x50", "1e3", " 80", "80 ", "+80", "-1", "8.0", "", "65536", "9".repeat(16)]
  ) {
    const e = assertThrows(
      () => parseIntFlag(bad, "port", { min: 0, max: 65535 }, "usage text"),
      UsageError,
    );
    assertEquals(e.message, `--port must be a whole number 0..65535, got '${bad}'`);
    assertEquals(e.hint, "usage text");
  }
  const low = assertThrows(() => parseIntFlag("0", "queue", { min: 1 }), UsageError);
  assertEquals(low.message, "--queue must be a whole number 1 or more, got '0'");
});
