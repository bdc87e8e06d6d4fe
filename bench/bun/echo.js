// Bun's own WebSocket echo (uWebSockets inside), an anchor of `wsbox-bench
// run`: every message goes back as it came, without compression
// (`perMessageDeflate: false`, as the other servers of the table run).
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req, server) {
    if (server.upgrade(req)) return;
    return new Response("a WebSocket upgrade is expected\n", { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    // The largest message of the table's cells, with room to spare.
    maxPayloadLength: 16 * 1024 * 1024,
    message(ws, message) {
      ws.send(message);
    },
  },
});
console.log(`bun echo listening on ws://127.0.0.1:${server.port}`);
