// Bun's own pub/sub (uWebSockets inside), the anchor of `wsbox-bench
// broadcast`: a client of /topics/<name> is subscribed to <name>, and each
// message it sends is published to the topic's other subscribers
// (`ws.publish` leaves the sender out), as wsbox's `--topic-path` relay does.
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req, server) {
    const path = new URL(req.url).pathname;
    const topic = path.startsWith("/topics/") ? path.slice("/topics/".length) : "";
    if (topic && server.upgrade(req, { data: { topic } })) return;
    return new Response("a WebSocket upgrade to /topics/<name> is expected\n", { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    open(ws) {
      ws.subscribe(ws.data.topic);
    },
    message(ws, message) {
      ws.publish(ws.data.topic, message);
    },
  },
});
console.log(`bun pubsub listening on ws://127.0.0.1:${server.port}`);
