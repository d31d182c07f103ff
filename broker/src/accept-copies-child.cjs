// Helper of broker/src/accept-copies.ts: sends every listening handle it receives straight back, so the
// parent gets another file descriptor of the same listening socket (file descriptors passed over IPC are
// duplicates). Raw handles ('net.Native') are not listened on here, so this process never accepts.
/* global process */
"use strict";
process.on("message", (msg, handle) => {
  if (msg === "copy" && handle) process.send("copy", handle, () => handle.close());
});
