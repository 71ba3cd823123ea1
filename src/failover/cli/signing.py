"""Signed plans on the command line: ``failover sign``, and the options with which ``apply``
says what a plan's signatures must show (outside the plan: options or environment)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from failover.cli.app import F, handle_errors, main, read_plan, stacked
from failover.durations import parse_duration
from failover.errors import RefusedError

if TYPE_CHECKING:
    from failover.plan import Plan
    from failover.signatures import Verified

PASSPHRASE_ENV = "FAILOVER_SIGNING_KEY_PASSPHRASE"


@main.command("sign")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path), metavar="PLAN.json")
@click.option(
    "--key",
    "key",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="OpenSSH private key (ed25519 or ECDSA); a passphrase comes from " + PASSPHRASE_ENV + ".",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the signature (default PLAN.json.sig; a second signer: PLAN.json.NAME.sig).",
)
@handle_errors
def sign_cmd(plan_file: Path, key: Path, output: Path | None) -> None:
    """Sign a plan file as its reviewer, in OpenSSH's sshsig format (namespace failover-plan)."""
    from failover.sshsig import NAMESPACE, SignatureError, parse_signature, sign

    data = _plan_bytes(plan_file)
    target = output or plan_file.with_name(plan_file.name + ".sig")
    if target.exists():
        raise click.UsageError(
            f"{target} exists (another signer's?): give this signature its own file, "
            f"e.g. --output {plan_file.name}.{os.environ.get('USER', 'me')}.sig"
        )
    passphrase = os.environ.get(PASSPHRASE_ENV)
    try:
        armored = sign(data, key, NAMESPACE, passphrase.encode() if passphrase else None)
        fingerprint = parse_signature(armored, str(target)).fingerprint
    except SignatureError as exc:
        raise RefusedError(str(exc)) from None
    try:
        with target.open("x", encoding="utf-8") as out:  # never over another signer's
            out.write(armored)
    except OSError as exc:
        raise click.UsageError(f"cannot write {target}: {exc}") from None
    click.echo(f"signed {plan_file} with {fingerprint}: {target}")
    click.echo(
        f"  check: ssh-keygen -Y verify -f ALLOWED_SIGNERS -I PRINCIPAL -n {NAMESPACE} "
        f"-s {target} < {plan_file}"
    )


def _plan_bytes(plan_file: Path) -> bytes:
    """The plan file's bytes, once they are shown to be a plan in canonical form."""
    try:
        return read_plan(plan_file)[0]
    except RefusedError as exc:
        raise RefusedError(f"not signed: {exc}") from None


def signature_options(func: F) -> F:
    """What apply demands of the plan's signatures, and who approves by signing."""
    decorators = [
        click.option(
            "--allowed-signers",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="FAILOVER_ALLOWED_SIGNERS",
            help="OpenSSH allowed_signers file: whose signatures count (env FAILOVER_ALLOWED_SIGNERS).",
        ),
        click.option(
            "--require-signatures",
            type=click.IntRange(min=0),
            envvar="FAILOVER_REQUIRE_SIGNATURES",
            default=0,
            help="Refuse (exit 3) unless this many distinct allowed keys signed the plan "
            "(env FAILOVER_REQUIRE_SIGNATURES).",
        ),
        click.option(
            "--signature",
            "signature_files",
            multiple=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="A signature file besides PLAN.json.sig and PLAN.json.*.sig (repeatable).",
        ),
        click.option(
            "--max-plan-age",
            envvar="FAILOVER_MAX_PLAN_AGE",
            metavar="DURATION",
            help="Refuse a plan made longer ago than this, e.g. 24h (env FAILOVER_MAX_PLAN_AGE).",
        ),
        click.option(
            "--signers-approve",
            is_flag=True,
            envvar="FAILOVER_SIGNERS_APPROVE",
            help="The verified signers approve the plan's pivots and approval steps "
            "(env FAILOVER_SIGNERS_APPROVE=1).",
        ),
    ]
    return stacked(func, decorators)


def required_by_environment() -> int:
    """How many signatures the environment demands of what runs against real clouds (0: none);
    exit 2 when it says something that is not a number."""
    text = os.environ.get("FAILOVER_REQUIRE_SIGNATURES", "").strip() or "0"
    if not text.isdigit():
        raise click.UsageError(f"FAILOVER_REQUIRE_SIGNATURES={text!r}: expected a whole number")
    return int(text)


def refuse_unsigned(what: str, signed: int) -> None:
    """Refuse (exit 3) to run ``what`` with fewer verified signatures than the environment
    demands: a drill against real clouds makes its own plan, which nobody signed."""
    required = required_by_environment()
    if signed < required:
        raise RefusedError(
            f"FAILOVER_REQUIRE_SIGNATURES={required}: {what} has {signed} verified signature(s); "
            "run a signed plan file with `failover apply` instead"
        )


def verified_signatures(
    plan_file: Path, data: bytes, plan: Plan, kwargs: dict[str, Any]
) -> tuple[list[Verified], bool]:
    """Check the plan file's bytes against the signature options (popped from ``kwargs``): the
    signatures that count, and whether the signers approve."""
    from failover.signatures import Policy, check

    max_age = kwargs.pop("max_plan_age")
    try:
        max_age_s = parse_duration(max_age) if max_age else None
    except ValueError as exc:
        raise click.BadParameter(f"--max-plan-age: {exc}") from None
    policy = Policy(
        allowed_signers=kwargs.pop("allowed_signers"),
        required=kwargs.pop("require_signatures"),
        max_age_s=max_age_s,
        signature_files=tuple(kwargs.pop("signature_files")),
    )
    signers_approve = bool(kwargs.pop("signers_approve"))
    if signers_approve and not policy.required:
        raise click.UsageError("--signers-approve needs --require-signatures N (at least 1)")
    verified = check(plan_file, data, plan, policy) if policy.demands else []
    return verified, signers_approve
