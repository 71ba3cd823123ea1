"""A corpus of secrets planted everywhere a runbook, its environment and its providers can put
them (parameters under secret-looking keys, secret-shaped values under innocent ones, site vars
passed on by ``${to.vars.NAME}``, the process environment, provider errors, action results),
and the real command line run over it: validate, plan in every format, drill, apply, status,
report in every format, history, metrics, the journal's files and the logs (JSON lines, and the
console on a terminal). No canary reaches any of them; what only looks like a secret (a git
commit, a UUID, an ARN, a reference to a secret) is shown as it is; and the providers still
receive the real values.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.plan import Scenario
from failover.planner import make_plan
from failover.providers.sim import SimWorld
from failover.redact import forget_secrets
from failover.render import PLAN_FORMATS, render_plan
from failover.report import REPORT_FORMATS, render_report, report_data
from failover.runbook import Runbook, load_runbook
from failover.state import open_store
from failover.state.events import RunState
from tests.conftest import ROOT

CANARIES: dict[str, str] = {}


def canary(name: str, value: str) -> str:
    """Plant ``value`` (a secret that must reach no output) under ``name``; returns it."""
    assert name not in CANARIES and value not in CANARIES.values(), name
    CANARIES[name] = value
    return value


# --- under secret-looking keys of a check's parameters: plain values, only their keys say so -----
KEYED = {
    key: canary(f"key:{key}", f"kv{n:02d}{key.lower().replace('-', '').replace('_', '')[:6]}q7z")
    for n, key in enumerate(
        [
            "password",
            "passwd",
            "pwd",
            "passphrase",
            "cookie",
            "session_token",
            "private_key",
            "client_secret",
            "auth",
            "authorization",
            "x-api-key",
            "dsn",
            "api_key",
            "apiKey",
            "clientSecret",
            "secret",
            "token",
            "db_pass",
            "connection_string",
            "Set-Cookie",
            "SecretString",
            "access_token",
            "aws_secret_access_key",
            "github_token",
            "Proxy-Authorization",
        ]
    )
}
NESTED = canary("key:credentials.key", "kvnestedcredq7z")  # {credentials: {user: ops, key: ...}}

# --- secret-shaped values under innocent keys ------------------------------------------------------
BASIC = base64.b64encode(b"svc:basicpw7c4e1d").decode()
PRIVATE_BODY = "MIIEowIBAAKCAQEAcanaryPrivateKeyBody9f3e2d1c0b"
SHAPES = [
    f"https://deploy:{canary('url:https', 'urlpw3f9a1c')}@git.internal/shop.git",
    f"postgres://app:{canary('url:postgres', 'pgpw8c21d4')}@db.internal:5432/app",
    f"redis://:{canary('url:redis', 'redispw5e9b27')}@cache.internal:6379/0",
    f"mongodb+srv://ops:{canary('url:mongo-at', 'mg@pw61d0')}@cluster0.internal/admin",
    f"Authorization: token {canary('header:token', 'hdrtok3d7e91')}",
    f"Authorization: Bearer {canary('header:bearer', 'bearertok4c8f2a9d')}",
    f"Authorization: Basic {canary('header:basic', BASIC)}",
    f"Proxy-Authorization: Digest username=ops, response={canary('header:digest', 'digestresp6b1c')}",
    f"Cookie: sid={canary('header:cookie', 'cookiesid2a9f7e')}; theme=dark",
    f"Set-Cookie: session={canary('header:set-cookie', 'setcookie8d3b5a')}; HttpOnly",
    f"https://api.internal/cb?access_token={canary('query:access_token', 'qtok5f1e7c')}&page=2",
    f"https://blob.internal/c/b?sv=2021-08-06&sig={canary('query:sig', 'qsig9a7b3c1d')}",
    "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    f"&X-Amz-Credential={canary('query:x-amz-credential', 'amzcred7c1d')}%2F20240101%2Fus-east-1"
    f"&X-Amz-Signature={canary('query:x-amz-signature', 'amzsig0e4b6f2a')}"
    f"&X-Amz-Security-Token={canary('query:x-amz-security-token', 'amztokFwoG3b8c')}",
    canary("github:ghp", "ghp_" + "Cnry9ghpTok3n5e7a1b2c3d4e5f6a7b8c9d0e1"),
    canary("github:pat", "github_pat_11CNRY0000_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0"),
    canary("slack:bot", "xoxb-120000000001-1200000000002-CnryBotTok7e1"),
    canary("slack:user", "xoxp-130000000001-1300000000002-CnryUsrTok2f9"),
    canary("google:oauth", "ya29.a0AfH6SMCnryOauthTok_3n7e"),
    canary("google:api-key", "AIza" + "SyCnryApiKey0123456789abcdefghij_-x"),
    canary("aws:access-key-id", "AKIAZ7CANARY0000TEST"),
    canary("aws:session-key-id", "ASIAZ7CANARY0000SESS"),
    canary("aws:secret-key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYCANARYKEY1"),
    "-----BEGIN RSA PRIVATE KEY-----\n"
    + canary("private-key", PRIVATE_BODY)
    + "\n-----END RSA PRIVATE KEY-----",
    f'{{"client_secret": "{canary("text:json", "jsonsec4e2a7b")}"}}',
    f"api_key: {canary('text:yaml', 'yamlkey7b3c9e')}",
    f"login failed: password={canary('text:logfmt', 'logfmtpw1c9d')} user=ops",
    f"Server=db.internal;User Id=sa;Password={canary('text:connection-string', 'connpw5a7e3f')};",
    canary(
        "jwt",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnktand0LXN1YmplY3QifQ.Cnry5Sig7N3x_0aQ9b8C7d6E5f4G3h2",
    ),
    f"{{'x-api-key': '{canary('text:repr', 'reprkey6d1f0a')}', 'region': 'us-west-2'}}",
]

# --- site vars, passed to parameters with innocent names by ${to.vars.NAME} ------------------------
WEST_VARS = {
    "api_key": canary("vars:api_key", "varkey9d2e7f"),
    "db_password": canary("vars:db_password", "vardbpw4a8c1e"),
    "session_token": canary("vars:session_token", "varsess6f0b3d"),
    "pwd": canary("vars:pwd", "varpwd2c7e9a"),
    "client_secret": canary("vars:client_secret", "varclient8e1f4b"),
    "endpoint": f"https://svc:{canary('vars:endpoint-url', 'varurlpw5b3a0c')}@api.west.internal/v1",
}
EAST_VARS = {
    "api_key": canary("vars:east.api_key", "eastkey3c8d1a"),
    "db_password": canary("vars:east.db_password", "eastdbpw7f2e5b"),
    "session_token": canary("vars:east.session_token", "eastsess1a6c9d"),
    "pwd": canary("vars:east.pwd", "eastpwd8b4f2e"),
    "client_secret": canary("vars:east.client_secret", "eastclient0d5a7c"),
    "endpoint": f"https://svc:{canary('vars:east.endpoint-url', 'eastUrlpw2e9c4f')}@api.east.internal/v1",
}
# protected only by registering the runbook's secret-keyed values when it is loaded (their
# parameters have innocent names and their values no secret shape)
FROM_VARS = {f"vars:{k}" for k in ("api_key", "db_password", "session_token", "pwd", "client_secret")}

# --- the process environment, some of it referenced by ${env:NAME} --------------------------------
ENV = {
    "FAILOVER_DB_PASSWORD": canary("env:FAILOVER_DB_PASSWORD", "envdbpw6e3a9c"),
    "FAILOVER_API_TOKEN": canary("env:FAILOVER_API_TOKEN", "envapitok2b7d4f"),
    "GITHUB_TOKEN": canary("env:GITHUB_TOKEN", "envghtok8c1e5a"),
    "AWS_SECRET_ACCESS_KEY": canary("env:AWS_SECRET_ACCESS_KEY", "envawssecret4d9b2e"),
    "AWS_SESSION_TOKEN": canary("env:AWS_SESSION_TOKEN", "envawssess7a3f1c"),
    "SLACK_WEBHOOK_TOKEN": canary("env:SLACK_WEBHOOK_TOKEN", "envslack0e6c8b"),
}

# --- what providers say: errors and results ----------------------------------------------------------
FENCE_TARGET = f"postgres://app:{canary('error:step', 'fencepw9e2c4a')}@db.east.internal:5432/app"
ROTATE_TARGET = f"Authorization: token {canary('error:transient', 'rotatetok5d8b1e')}"
DEPLOY_TARGET = f"https://deploy:{canary('result:target-url', 'deploypw3b6e0f')}@git.internal/shop.git"
SOURCE_LOGIN = {
    "error": f"login refused at https://admin:{canary('error:check', 'consolepw7c2a9d')}@console.east/",
    "password": canary("error:check.password", "checkpw1f8e3b"),
}
# botocore's errors quote the endpoint URL, with its credentials (the site's endpoint refuses)
# userinfo in an endpoint is refused before any call; a token in its query reaches botocore's errors
ENDPOINT = f"http://127.0.0.1:REFUSED_PORT/?access_token={canary('error:botocore-endpoint', 'botopw7e1c5a')}"
RESULTS = {
    "api_token": canary("result:api_token", "resulttok6a0d2c"),
    "header": f"Authorization: Bearer {canary('result:bearer', 'resultbearer8e4f1a9b')}",
}

# --- what only looks like a secret: shown verbatim -----------------------------------------------------
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
NEAR_MISSES = {
    "commit": SHA,
    "tree": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "request": "123e4567-e89b-12d3-a456-426614174000",
    "secret_ref_arn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:prod/db-AbCdEf",
    "role": "arn:aws:iam::123456789012:role/failover-drill",
    "image": "ami-0abcdef1234567890",
    "word": "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMN",
    "camel": "ThisIsAFortyCharacterIdentifierWithNoDig",
    "permission": "secretsmanager:GetSecretValue",
}
REFERENCES = [
    "${secret:aws-ssm:/prod/db/password}",
    "${secret:aws-sm:prod/api#token}",
    "${env:API_TOKEN}",
]


def _flow(items: object) -> str:
    """YAML flow style (JSON is a subset of YAML)."""
    return json.dumps(items)


KEYS_OBSERVED = _flow({**KEYED, "credentials": {"user": "ops", "key": NESTED}})


RUNBOOK = f"""\
version: 1
name: canaries
sites:
  east:
    aws: {{region: us-east-1, endpoint_url: "{ENDPOINT}"}}
    gcp: {{project: p, region: us-east4}}
    vars: {_flow(EAST_VARS)}
  west:
    aws: {{region: us-west-2}}
    gcp: {{project: p, region: us-west1}}
    vars: {_flow(WEST_VARS)}
defaults: {{retries: 3}}
services:
  db:
    preflight:
      - {{id: keys, check: sim.check, site: "${{to}}", with: {{ok: true, observed: {KEYS_OBSERVED}}}}}
      - {{id: shapes, check: sim.check, site: "${{to}}",
         with: {{ok: true, observed: {{notes: {_flow(SHAPES)}}}}}}}
      - {{id: near-misses, check: sim.check, site: "${{to}}",
         with: {{ok: true, observed: {_flow(NEAR_MISSES)}}}}}
      - {{id: source-login, check: sim.check, site: "${{from}}", ungraceful: best_effort, modes: [ungraceful],
         with: {{ok: false, observed: {_flow(SOURCE_LOGIN)}}}}}
      - {{id: alarms, check: aws.cloudwatch.alarms_ok, site: "${{from}}", ungraceful: best_effort,
         modes: [ungraceful], timeout: 10s, with: {{names: [orders-writer-errors]}}}}
    steps:
      - {{id: promote, action: sim.step, site: "${{to}}", with: {{target: "${{to.vars.api_key}}"}}}}
      - {{id: rotate, action: sim.step, site: "${{to}}",
         with: {{fail_attempts: 1, target: "{ROTATE_TARGET}"}}}}
      - {{id: credentials, action: sim.step, site: "${{to}}",
         with: {{target: "${{env:FAILOVER_DB_PASSWORD}}"}}}}
      - {{id: session, action: sim.step, site: "${{to}}",
         with: {{target: "session-${{to.vars.session_token}}"}}}}
      - {{id: endpoint, action: sim.step, site: "${{to}}", with: {{target: "${{to.vars.endpoint}}"}}}}
      - {{id: deploy, action: sim.step, site: "${{to}}", with: {{target: "{DEPLOY_TARGET}"}}}}
      - {{id: release, action: sim.step, site: "${{to}}", with: {{target: "release-{SHA}"}}}}
      - {{id: fence, action: sim.step, site: "${{from}}", ungraceful: best_effort, after: [],
         with: {{fail: true, target: "{FENCE_TARGET}"}}}}
    verify:
      - {{id: vars, check: sim.check, site: "${{to}}", with: {{ok: true, observed: {{
          note: "${{to.vars.db_password}}", client: "${{to.vars.client_secret}}", pw: "${{to.vars.pwd}}"}}}}}}
      - {{id: env, check: sim.check, site: "${{to}}", with: {{ok: true, observed: {{
          value: "${{env:FAILOVER_API_TOKEN}}", github: "${{env:GITHUB_TOKEN}}"}}}}}}
      - {{id: results, check: sim.check, site: "${{to}}", with: {{ok: true, observed: {_flow(RESULTS)}}}}}
  vault:
    description: planned and reviewed, never run here (its secrets are in AWS)
    preflight:
      - {{id: refs, check: sim.check, site: "${{to}}", with: {{ok: true, observed: {{
          password: "{REFERENCES[0]}", token: "{REFERENCES[1]}", api_key: "{REFERENCES[2]}"}}}}}}
    steps:
      - {{id: read, action: sim.step, site: "${{to}}", with: {{target: "{REFERENCES[0]}"}}}}
"""
RUN_SCOPE = ("--scope", "db")  # vault's references would be read from AWS

# The command line, as the console script runs it.
LAUNCHER = "from failover.cli import entry\nentry()\n"

ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[@-Z\\-_])")


def _env() -> dict[str, str]:
    aws = {
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",  # with ENV's secret key and session token
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    return {**os.environ, **aws, **ENV, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}


def _cli(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in ok, f"failover {' '.join(args)}: exit {done.returncode}\n{done.stderr}"
    return done


def _on_a_terminal(*args: str) -> str:
    """Run the command line with a terminal for its standard streams (the live view, console
    logs); everything it wrote there, without escape sequences."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *args],
        cwd=ROOT,
        env={**_env(), "TERM": "xterm", "LINES": "60"},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                break
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        proc.wait(timeout=60)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")
    return ANSI.sub("", b"".join(chunks).decode(errors="replace"))


def _state_files(state: Path) -> str:
    """The store's files as raw bytes: the journal (with SQLite's files beside it) and whatever
    else the store keeps, but not the plan files (plans/, the plan as reviewed and applied) nor
    the simulated provider's world (sim.sqlite, which holds what the provider was given)."""
    found = []
    for path in sorted(state.rglob("*")):
        if path.is_file() and "plans" not in path.relative_to(state).parts and "sim" not in path.name:
            found.append(path.read_bytes().decode("latin-1"))
    assert found, f"nothing in {state}"
    return "\n".join(found)


def _leaks(outputs: dict[str, str], spared: dict[str, set[str]]) -> list[str]:
    return [
        f"{name} ({value!r}) in {where}"
        for where, text in outputs.items()
        for name, value in CANARIES.items()
        if value in text and name not in spared.get(where, set())
    ]


@pytest.fixture
def runbook(tmp_path: Path, refused: str) -> Iterator[Path]:
    path = tmp_path / "canaries.yaml"
    path.write_text(RUNBOOK.replace("REFUSED_PORT", refused.rsplit(":", 1)[1]), encoding="utf-8")
    yield path
    forget_secrets()


def _loaded(path: Path) -> Runbook:
    """The runbook loaded in this process (loading registers its secret-keyed values)."""
    return load_runbook(path)


def test_the_corpus_is_large_and_planted_where_it_counts() -> None:
    assert len(CANARIES) >= 60
    assert len(set(CANARIES.values())) == len(CANARIES)
    for value in CANARIES.values():
        assert value in RUNBOOK or value in ENV.values() or value == BASIC


def test_no_canary_reaches_any_output_of_the_command_line(runbook: Path, tmp_path: Path) -> None:
    """Every command, every format, every file it writes; then the providers' side."""
    out: dict[str, str] = {}
    spared: dict[str, set[str]] = {}
    both = ("--from", "east", "--to", "west")

    done = _cli("validate", str(runbook))
    out["validate"] = done.stdout + done.stderr

    for mode in ("graceful", "ungraceful"):
        for fmt in ("text", "markdown", "json", "dot"):
            done = _cli("plan", str(runbook), *both, "--mode", mode, "--format", fmt)
            out[f"plan {mode} --format {fmt}"] = done.stdout + done.stderr
    for fmt in ("text", "markdown", "json"):
        written = tmp_path / f"plan.{fmt}"
        done = _cli("plan", str(runbook), *both, "--format", fmt, "-o", str(written))
        out[f"plan --format {fmt} -o"] = written.read_text() + done.stdout + done.stderr
    markdown = out["plan graceful --format markdown"]
    for near in [*NEAR_MISSES.values(), *REFERENCES]:
        assert near in markdown, f"{near} was redacted in the Markdown plan"
        assert near in out["plan graceful --format json"], f"{near} was redacted in the JSON plan"

    # a drill, source down: a best-effort check and step fail, a step fails once then succeeds
    state = tmp_path / "state"
    report_md, metrics = tmp_path / "drill-report.md", tmp_path / "drill.prom"
    done = _cli(
        "drill",
        str(runbook),
        *both,
        "--mode",
        "ungraceful",
        *RUN_SCOPE,
        "--auto-approve",
        "--state",
        str(state),
        "--format",
        "json",
        "--report",
        str(report_md),
        "--metrics-file",
        str(metrics),
    )
    assert '"event": "attempt_failed"' in done.stderr and '"event": "step_failed"' in done.stderr
    run_id = json.loads(done.stdout.splitlines()[0])["run_id"]
    out["drill stdout"], out["drill logs (JSON lines)"] = done.stdout, done.stderr
    out["drill --report"], out["drill --metrics-file"] = report_md.read_text(), metrics.read_text()
    assert "failover_run_success" in out["drill --metrics-file"]

    for args in (("status",), ("status", run_id, "--format", "json")):
        done = _cli(*args, "--state", str(state))
        out[" ".join(args[:1] + args[2:])] = done.stdout + done.stderr
    for fmt in ("markdown", "json", "junit"):
        done = _cli("report", run_id, "--state", str(state), "--format", fmt)
        out[f"report --format {fmt}"] = done.stdout + done.stderr
    written = tmp_path / "report.xml"
    _cli("report", run_id, "--state", str(state), "--format", "junit", "-o", str(written))
    out["report -o"] = written.read_text()
    assert "login refused" in out["report --format json"]  # the failing check's observation, redacted
    assert "Could not connect to the endpoint URL" in out["report --format json"]
    for near in NEAR_MISSES.values():
        assert near in out["report --format json"], f"{near} was redacted in the report"
    for fmt in ("text", "json"):
        done = _cli("history", str(runbook), "--state", str(state), "--format", fmt)
        out[f"history --format {fmt}"] = done.stdout + done.stderr
    out["journal (drill)"] = _state_files(state)
    # descriptions come from the plan the run keeps: only a process that loaded the runbook
    # knows the values its vars pass to parameters with innocent names
    spared["report --format json"] = FROM_VARS

    # the same drill on a terminal: the live view and console logs
    out["drill on a terminal"] = _on_a_terminal(
        "drill", str(runbook), *both, "--mode", "ungraceful", *RUN_SCOPE, "--auto-approve",
        "--state", str(tmp_path / "state-tty"),
    )  # fmt: skip
    assert "attempt_failed" in out["drill on a terminal"]
    out["journal (drill on a terminal)"] = _state_files(tmp_path / "state-tty")

    # a plan file applied: the step at the source fails, the run rolls back
    plan_file, applied = tmp_path / "plan.json", tmp_path / "state-apply"
    scenario = Scenario.model_validate({"from": "east", "to": "west", "scope": ["db"]})
    plan_file.write_text(make_plan(_loaded(runbook), scenario).to_json(), encoding="utf-8")
    forget_secrets()
    metrics = tmp_path / "apply.prom"
    done = _cli(
        "apply",
        str(plan_file),
        "--auto-approve",
        "--state",
        str(applied),
        "--format",
        "json",
        "--metrics-file",
        str(metrics),
        ok=(1,),
    )
    assert "rolled_back" in done.stdout, done.stdout
    apply_id = json.loads(done.stdout.splitlines()[0])["run_id"]
    out["apply stdout"], out["apply logs (JSON lines)"] = done.stdout, done.stderr
    out["apply --metrics-file"] = metrics.read_text()
    out["journal (apply)"] = _state_files(applied)
    for fmt in ("markdown", "json", "junit"):
        done = _cli("report", apply_id, "--state", str(applied), "--format", fmt)
        out[f"report --format {fmt} (apply)"] = done.stdout + done.stderr
    done = _cli("status", apply_id, "--state", str(applied))
    out["status (apply)"] = done.stdout + done.stderr
    # a process that runs a plan file never loaded the runbook: values its vars passed to
    # parameters with innocent names are not known there to be secrets
    for where in ("apply stdout", "apply logs (JSON lines)", "journal (apply)", "status (apply)"):
        spared[where] = FROM_VARS
    for fmt in ("markdown", "json", "junit"):
        spared[f"report --format {fmt} (apply)"] = FROM_VARS

    leaks = _leaks(out, spared)
    assert not leaks, f"{len(leaks)} leaks:\n" + "\n".join(leaks)

    # the providers were given the real values: redaction is for what is written, not for calls
    world = SimWorld(state)
    values = world.values()
    for real in (WEST_VARS["api_key"], ENV["FAILOVER_DB_PASSWORD"], DEPLOY_TARGET, WEST_VARS["endpoint"]):
        assert real in values, f"{real} never reached the provider"
    seen = json.dumps([e.value for e in world.events() if e.op == "check"])
    for real in (KEYED["password"], NESTED, WEST_VARS["db_password"], ENV["FAILOVER_API_TOKEN"]):
        assert real in seen, f"{real} never reached the check"


def test_plan_and_report_renderings_redact_in_process(runbook: Path, tmp_path: Path) -> None:
    """Wide renderings (nothing folded by a table), of a plan and of a run's report."""
    rb = _loaded(runbook)
    plan = make_plan(rb, Scenario.model_validate({"from": "east", "to": "west", "mode": "ungraceful"}))
    shown = {fmt: render_plan(plan, fmt, width=2000) for fmt in PLAN_FORMATS}
    for fmt, text in shown.items():
        leaked = [name for name, value in CANARIES.items() if value in text]
        assert not leaked, f"{fmt}: {leaked}"
        if fmt != "dot":
            for near in [*NEAR_MISSES.values(), *REFERENCES]:
                assert near in text, f"{near} redacted in {fmt}"
        assert fmt == "dot" or plan.fingerprint in text
    assert "[redacted]" in shown["json"]
    assert plan.to_json() != shown["json"]  # the plan file itself keeps its values: it is run

    done = _cli(
        "drill", str(runbook), "--from", "east", "--to", "west", "--mode", "ungraceful", *RUN_SCOPE,
        "--auto-approve", "--state", str(tmp_path / "s"), "--format", "json",
    )  # fmt: skip
    run_id = json.loads(done.stdout.splitlines()[0])["run_id"]
    store = open_store(str(tmp_path / "s"), read_only=True)
    events = store.events(run_id)
    data = report_data(store.run_plan(run_id), RunState.replay(run_id, events), events)
    for kind in REPORT_FORMATS:
        text = render_report(data, kind)
        leaked = [name for name, value in CANARIES.items() if value in text]
        assert not leaked, f"report {kind}: {leaked}"
    assert SHA in render_report(data, "json")
