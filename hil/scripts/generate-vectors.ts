/**
 * Writes the golden serial-link vectors shared with the reference firmware:
 *   hil/vectors/frames.json            frames (hex + meaning) and corrupted blocks (hex + expected error)
 *   hil/firmware/test/vectors_gen.h    the same, as C data for `make -C hil/firmware test`
 * A test fails when either file differs from what this script would write.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderCHeader, renderFramesJson } from "../src/vector-files.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
writeFileSync(`${root}vectors/frames.json`, renderFramesJson());
writeFileSync(`${root}firmware/test/vectors_gen.h`, renderCHeader());
process.stdout.write("wrote hil/vectors/frames.json and hil/firmware/test/vectors_gen.h\n");
