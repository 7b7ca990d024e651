"""The peer figure of `cadre-bench --only peer`: the plainest fan-out a user
would write -- an asyncio loop with a semaphore over the official Anthropic
Python SDK -- sending the same worker requests to the same simulator.

Usage: peer_fanout.py URL REQUESTS.jsonl CONCURRENCY
Prints one JSON object: makespan_ms (first send to last answer), cpu_s (this
process's CPU time over the same span, every thread), calls, ok (answers that
carry a tool_use block).
"""

import asyncio
import json
import sys
import time

import anthropic

KNOWN = {"model", "max_tokens", "messages", "system", "tools", "tool_choice", "thinking", "output_config"}


async def fan_out(url: str, requests: list, concurrency: int) -> dict:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="sim-bench-key", max_retries=2)
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict) -> bool:
        async with gate:
            known = {k: v for k, v in body.items() if k in KNOWN}
            extra = {k: v for k, v in body.items() if k not in KNOWN}
            message = await client.messages.create(**known, extra_body=extra or None)
            return any(block.type == "tool_use" for block in message.content)

    started, cpu = time.perf_counter(), time.process_time()
    answers = await asyncio.gather(*(one(body) for body in requests))
    makespan, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.close()
    return {
        "makespan_ms": makespan * 1000.0,
        "cpu_s": cpu,
        "calls": len(answers),
        "ok": sum(answers),
    }


def main() -> None:
    url, path, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(path, encoding="utf-8") as f:
        requests = [json.loads(line) for line in f if line.strip()]
    print(json.dumps(asyncio.run(fan_out(url, requests, concurrency))))


if __name__ == "__main__":
    main()
