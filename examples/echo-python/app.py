"""Qt's echo server example (examples/websockets/echoserver) in Python: a
wsbox app component (world `app`) built with componentize-py. It imports the
server API and runs as a command; composed with a server component it is a
complete server (see README.md):

    componentize-py -d ../../wit -w app componentize app -o echo-py.wasm
    wac plug echo-py.wasm --plug wsbox-server.wasm -o echo-py-composed.wasm
    wsbox run echo-py-composed.wasm --listen 127.0.0.1:1234

newConnection -> nextPendingConnection -> textMessageReceived ->
sendTextMessage (the same for binary); disconnected -> the socket is dropped.

One addition shows wsbox's topics: every client is subscribed to the topic
"everyone", and a text message "broadcast: <text>" is not echoed but
published to it: every other client receives "<text>" (the server frames it
once for all of them).
"""

import sys

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.websocket_server import (
    Event_BinaryMessageReceived,
    Event_Disconnected,
    Event_NewConnection,
    Event_TextMessageReceived,
    Event_Writable,
    SecureMode,
    Server,
    publish_text_message,
)

EVERYONE = "everyone"
BROADCAST = "broadcast: "

USAGE = "usage: echo [--listen ADDRESS:PORT] (default 127.0.0.1:1234)"


def listen_address(args):
    listen = "127.0.0.1:1234"
    while args:
        arg = args.pop(0)
        if arg == "--listen" and args:
            listen = args.pop(0)
        else:
            raise ValueError(f"unknown argument '{arg}'\n{USAGE}")
    address, _, port = listen.rpartition(":")
    return address.strip("[]"), int(port)


class Run(exports.Run):
    def run(self) -> None:
        try:
            address, port = listen_address(sys.argv[1:])
        except ValueError as e:
            print(f"echo: {e}", file=sys.stderr)
            raise Err(None)
        server = Server("wsbox-python", SecureMode.NON_SECURE_MODE)
        if not server.listen(address, port):
            print(f"echo: cannot listen on {address}:{port}: {server.error_string()}", file=sys.stderr)
            raise Err(None)
        print(f"wsbox echo (Python, componentize-py): listening on {server.server_url()}", flush=True)

        sockets = {}  # id -> Websocket
        held = {}  # id -> echoes waiting for `writable`, in order

        def echo(socket_id, send):
            socket = sockets.get(socket_id)
            if socket is None:
                return
            if socket_id in held:
                held[socket_id].append(send)
            elif send(socket) == 0 and socket.send_buffer_full():
                held[socket_id] = [send]

        while True:
            for event in server.process_events(1000):
                if isinstance(event, Event_NewConnection):
                    while (socket := server.next_pending_connection()) is not None:
                        sockets[socket.id()] = socket
                        socket.subscribe(EVERYONE)
                elif isinstance(event, Event_TextMessageReceived):
                    text = event.value.message
                    if text.startswith(BROADCAST):
                        publish_text_message(EVERYONE, text[len(BROADCAST):], event.value.socket)
                    else:
                        echo(event.value.socket, lambda s, text=text: s.send_text_message(text))
                elif isinstance(event, Event_BinaryMessageReceived):
                    data = event.value.message
                    echo(event.value.socket, lambda s, data=data: s.send_binary_message(data))
                elif isinstance(event, Event_Writable):
                    for send in held.pop(event.value, []):
                        echo(event.value, send)
                elif isinstance(event, Event_Disconnected):
                    held.pop(event.value, None)
                    socket = sockets.pop(event.value, None)
                    if socket is not None:
                        socket.__exit__(None, None, None)
