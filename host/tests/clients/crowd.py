"""A crowd of Python `websockets` clients, each offering permessage-deflate
as browsers do: every client connects, sends one JSON chat message of about
1.8 KB, waits for its echo, and stays connected until the whole crowd is in;
then, when asked, every held client echoes once more and the crowd leaves.

Usage: crowd.py URL COUNT [--again] [--plain | --mixed]. --plain: no client
offers compression; --mixed: every other one does not. A wss:// URL is
reached without verifying the certificate. Prints one line of counts:
  echoed=N refused_503=N refused_429=N refused_other=N failed=N
  closed_with=CODE:N,... (closes the server sent while the crowd was held)
and with --again, after a line on stdin (the caller measures the server
while the crowd is held), again_echoed=N after the second round.
"""
import asyncio
import json
import resource
import ssl
import sys
from collections import Counter

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

MESSAGE = json.dumps(
    {
        "type": "message",
        "room": "lobby",
        "author": {"id": 4711, "name": "a browser"},
        "text": "a chat line of ordinary words, repeated to make a realistic message " * 24,
    }
)


async def one(url, held, counts, closes, start, plain):
    await start.wait()
    options = {"compression": None} if plain else {}
    if url.startswith("wss://"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        options["ssl"] = context
    try:
        ws = await connect(url, max_size=None, open_timeout=60, ping_interval=None, **options)
    except InvalidStatus as e:
        status = e.response.status_code
        counts[f"refused_{status}" if status in (429, 503) else "refused_other"] += 1
        return
    except Exception:
        counts["failed"] += 1
        return
    try:
        await ws.send(MESSAGE)
        got = await asyncio.wait_for(ws.recv(), 60)
        if got != MESSAGE:
            counts["failed"] += 1
            return
        counts["echoed"] += 1
        held.append(ws)
    except ConnectionClosed as e:
        closes[e.rcvd.code if e.rcvd else "none"] += 1
        counts["failed"] += 1
    except Exception:
        counts["failed"] += 1


async def again(ws, counts):
    try:
        await ws.send(MESSAGE)
        if await asyncio.wait_for(ws.recv(), 60) == MESSAGE:
            counts["again_echoed"] += 1
    except Exception:
        pass


async def main(url, count, twice, plain, mixed):
    held, counts, closes = [], Counter(), Counter()
    start = asyncio.Event()
    # At most a few hundred handshakes at once, as browsers arriving.
    gate = asyncio.Semaphore(300)

    async def gated(i):
        async with gate:
            await one(url, held, counts, closes, start, plain or (mixed and i % 2 == 1))

    tasks = [asyncio.create_task(gated(i)) for i in range(count)]
    start.set()
    await asyncio.gather(*tasks)
    for ws in held:
        if ws.close_code is not None:
            closes[ws.close_code] += 1
    print(
        f"echoed={counts['echoed']} refused_503={counts['refused_503']} refused_429={counts['refused_429']} "
        f"refused_other={counts['refused_other']} failed={counts['failed']} "
        f"closed_with={','.join(f'{k}:{v}' for k, v in closes.items())}",
        flush=True,
    )
    if twice:
        # The caller measures the server with the whole crowd held, then
        # says go on (a line on stdin).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await asyncio.gather(*(again(ws, counts) for ws in held))
        print(f"again_echoed={counts['again_echoed']}", flush=True)
    await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)


flags = sys.argv[3:]
asyncio.run(main(sys.argv[1], int(sys.argv[2]), "--again" in flags, "--plain" in flags, "--mixed" in flags))
