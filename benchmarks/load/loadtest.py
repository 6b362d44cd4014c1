"""Load test of `/api/chat` on loopback: FAQ questions, hearing answers and check-ins, bounded in time.

    python benchmarks/load/loadtest.py [--database-url URL] [--workers 2] [--seconds 30] [--users 40]
                                      [--corpus ../shared/corpus] [--unique]

Starts `madoguchi serve` in a fresh data dir (SQLite by default, or the
PostgreSQL URL given), loads the sample knowledge base, registers experts
with a visit each and links them, then runs `--users` concurrent virtual
users for `--seconds`: each sends its next message as soon as the previous
reply arrives. Mix: 70% FAQ questions, 20% hearing-sheet answers, 10%
check-ins (each expert checks in once, later ones are refused politely).
Reports throughput and p50/p95/p99 per kind, errors, and checks in the
database that every accepted message was stored exactly once. `--corpus` ingests
that folder instead of the sample knowledge base; `--unique` makes every FAQ
question a different text (no answer comes from the answer cache). The load
generator talks to `/api/chat` as an integration would: with a `chat`-scope
token (the bootstrap `MADOGUCHI_STAFF__API_TOKEN` it sets) and a `user_id` per virtual user.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
FAQ = [
    "専門家派遣は年に何回まで使えますか？", "謝金はいくらですか？", "申し込みはどうすればいいですか？",
    "日当はどんなときに出ますか？", "宿泊費の上限は？", "メールでの相談も謝金の対象ですか？",
    "自家用車の交通費は？", "専門家を選べますか？", "明日の天気は？", "おすすめのラーメン屋は？",
]
HEARING = ["株式会社負荷試験", "スキップ", "部品加工", "1", "約50人", "100-0001", "東京都千代田区千代田1-1", "山田",
           "03-1234-5678", "load@example.jp", "受発注をデジタル化したい", "2", "はい", "いいえ", "1,3", "スキップ"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


TOKEN = "loadtest-chat-token"


def prepare(data_dir: Path, env: dict[str, str], experts: int, corpus: str | None) -> list[tuple[str, int]]:
    """The knowledge base, experts with a visit today and a link code each. Returns (code, visit id)."""
    source = f"Path({str(Path(corpus).resolve())!r})" if corpus else "SAMPLE_KB_DIR"
    code = f"""
import sys
from datetime import date
from pathlib import Path
from bot.services import Services
from bot.settings import Settings, SAMPLE_KB_DIR
from handlers.accounts import link_codes
from handlers.accounts.registry import add_company, add_person
from handlers.visits.rules import rules_for
from handlers.visits.service import plan_visit
from knowledge.ingest import ingest_paths
services = Services.create(Settings())
ingest_paths(services, [{source}])
with services.db.session() as session:
    for n in range({experts}):
        company = add_company(session, f"株式会社負荷{{n}}")
        expert = add_person(session, "expert", f"専門家{{n}}")
        visit = plan_visit(session, rules_for(date.today()), expert_id=expert.id, company_id=company.id,
                           day=date.today()).visit
        print(link_codes.issue(session, "link", hours=2, person_id=expert.id), visit.id)
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    return [(line.split()[0], int(line.split()[1])) for line in out.strip().splitlines()]


async def virtual_user(client: httpx.AsyncClient, n: int, deadline: float, expert: tuple[str, int] | None,
                       samples: dict[str, list[float]], errors: list[str], sent: list[str],
                       unique: bool = False) -> None:
    rng = random.Random(n)
    user = f"load-{n}"
    hearing_step = 0
    checked_in = False

    async def post(kind: str, body: dict[str, object]) -> None:
        started = time.perf_counter()
        try:
            response = await client.post("/api/chat", json={"user_id": user, **body})
            if response.status_code != 200 or not response.json().get("replies"):
                errors.append(f"{kind}: {response.status_code} {response.text[:100]}")
            else:
                sent.append(user)
        except httpx.HTTPError as error:
            errors.append(f"{kind}: {error!r}")
        samples[kind].append((time.perf_counter() - started) * 1000)

    if expert is not None:
        await post("link", {"text": expert[0]})
    await post("hearing", {"text": "ヒアリング開始"})
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.7:
            question = rng.choice(FAQ)
            if unique:  # a different text every time: retrieval and ranking run for each one
                question = f"{question.rstrip('？?')}（利用者{n}の{len(samples['faq'])}件目の質問）"
            await post("faq", {"text": question})
        elif roll < 0.9 or expert is None or checked_in:
            await post("hearing", {"text": HEARING[hearing_step % len(HEARING)]})
            hearing_step += 1
        else:
            await post("checkin", {"choice": f"visits:in:{expert[1]}"})
            checked_in = True


def count_stored(env: dict[str, str]) -> int:
    code = """
from sqlalchemy import func, select
from bot.services import Services
from bot.settings import Settings
from bot.storage.models import Message
services = Services.create(Settings())
with services.db.session() as session:
    print(session.execute(select(func.count()).select_from(Message).where(Message.direction == "in",
                                                                          Message.channel == "web")).scalar_one())
"""
    return int(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                              text=True).stdout.strip())


async def run(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="madoguchi-load-"))
    env = os.environ | {"MADOGUCHI_DATA_DIR": str(data_dir), "MADOGUCHI_LOG__LEVEL": "WARNING",
                        "MADOGUCHI_STAFF__API_TOKEN": TOKEN,
                        "MADOGUCHI_LIMITS__MESSAGES_PER_USER_PER_MINUTE": "100000",
                        "MADOGUCHI_LIMITS__MESSAGES_PER_CHANNEL_PER_SECOND": "100000"}
    if args.database_url:
        env["MADOGUCHI_DATABASE__URL"] = args.database_url
    experts = prepare(data_dir, env, args.users // 2, args.corpus)
    port = 18000 + random.randint(0, 999)
    server = subprocess.Popen([str(Path(sys.executable).with_name("madoguchi")), "serve", "--port", str(port),
                               "--workers", str(args.workers)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                     headers={"Authorization": f"Bearer {TOKEN}"},
                                     limits=httpx.Limits(max_connections=args.users)) as client:
            for _ in range(1500):  # up to 5 minutes on a busy machine
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
            else:
                raise SystemExit("the server did not start")
            for question in FAQ:  # warm the workers (model load) outside the measurement
                for _ in range(args.workers * 2):
                    await client.post("/api/chat", json={"user_id": "warmup", "text": question})
            samples: dict[str, list[float]] = defaultdict(list)
            errors: list[str] = []
            sent: list[str] = []
            started = time.monotonic()
            deadline = started + args.seconds
            await asyncio.gather(*(virtual_user(client, n, deadline, experts[n] if n < len(experts) else None,
                                                samples, errors, sent, args.unique)
                                   for n in range(args.users)))
            elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = count_stored(env) - args.workers * 2 * len(FAQ)
    total = sum(len(v) for v in samples.values())
    db = "PostgreSQL" if args.database_url else "SQLite"
    kb = f"corpus {args.corpus}" if args.corpus else "sample KB"
    db += f", {kb}, {'unique' if args.unique else 'repeated'} FAQ questions"
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, {date.today()}")
    print(f"{db}, {args.workers} workers, {args.users} users, {elapsed:.0f} s: {total / elapsed:.0f} messages/s, "
          f"errors {len(errors)}, accepted {len(sent)}, stored {stored} "
          f"({'0 lost, 0 duplicated' if stored == len(sent) else 'MISMATCH'})")
    print("| kind | messages | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for kind in ("faq", "hearing", "checkin", "link"):
        values = samples.get(kind, [])
        if values:
            print(f"| {kind} | {len(values)} | {statistics.median(values):.0f} | {percentile(values, 95):.0f} | "
                  f"{percentile(values, 99):.0f} |")
    for error in errors[:5]:
        print("error:", error)
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--corpus", help="ingest this folder instead of the sample knowledge base")
    parser.add_argument("--unique", action="store_true", help="every FAQ question a different text")
    asyncio.run(run(parser.parse_args()))
