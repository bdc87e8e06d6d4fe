// Qt's echo server example (examples/websockets/echoserver) on Node.js: the
// wsbox WASI component (world server-wasi), transpiled by jco, listens
// through preview2-shim's wasi:sockets; this program drives its exported
// `server` exactly as the Qt example drives QWebSocketServer:
// newConnection -> nextPendingConnection -> textMessageReceived ->
// sendTextMessage (the same for binary), disconnected -> delete the socket.
//
//   node echo-server.mjs [--listen 127.0.0.1:1234]
//
// `processEvents` blocks Node's event loop while it waits (the shim runs
// socket I/O on a worker thread), so this program is the server and
// nothing else.
import { websocketServer } from './gen/wsbox.js';

const USAGE = 'usage: node echo-server.mjs [--listen ADDRESS:PORT]';

function listenAddress(args) {
  let listen = '127.0.0.1:1234';
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--listen' && i + 1 < args.length) listen = args[++i];
    else if (args[i].startsWith('--listen=')) listen = args[i].slice('--listen='.length);
    else throw new Error(`unknown argument '${args[i]}'\n${USAGE}`);
  }
  const colon = listen.lastIndexOf(':');
  const port = Number(listen.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`'${listen}' is not ADDRESS:PORT\n${USAGE}`);
  }
  return [listen.slice(0, colon).replace(/^\[|\]$/g, ''), port];
}

const [address, port] = listenAddress(process.argv.slice(2));
const server = new websocketServer.Server('wsbox-node', 'non-secure-mode');
if (!server.listen(address, port)) {
  console.error(`echo-server: cannot listen on ${address}:${port}: ${server.errorString()}`);
  process.exit(1);
}
console.log(`wsbox echo (Node ${process.version}, jco): listening on ${server.serverUrl()}`);

// Open sockets by id; echoes a slow reader's send buffer had no room for.
const sockets = new Map();
const held = new Map();

function echo(id, send) {
  const socket = sockets.get(id);
  if (!socket) return;
  const queue = held.get(id);
  if (queue) return queue.push(send);
  if (send(socket) === 0n && socket.sendBufferFull()) held.set(id, [send]);
}

for (;;) {
  for (const event of server.processEvents(1000)) {
    switch (event.tag) {
      case 'new-connection': {
        for (let s = server.nextPendingConnection(); s; s = server.nextPendingConnection()) {
          sockets.set(s.id(), s);
        }
        break;
      }
      case 'text-message-received': {
        const { socket, message } = event.val;
        echo(socket, (s) => s.sendTextMessage(message));
        break;
      }
      case 'binary-message-received': {
        const { socket, message } = event.val;
        echo(socket, (s) => s.sendBinaryMessage(message));
        break;
      }
      case 'writable': {
        const queue = held.get(event.val) ?? [];
        held.delete(event.val);
        for (const send of queue) echo(event.val, send);
        break;
      }
      case 'disconnected': {
        held.delete(event.val);
        sockets.get(event.val)?.[Symbol.dispose]();
        sockets.delete(event.val);
        break;
      }
      default:
        break;
    }
  }
}
