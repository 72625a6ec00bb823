"""``kubeagora intent sign`` and ``kubeagora intent keygen``: signed OrchestrationIntents from the command line.

Mounted by the main CLI; imports only typer and the standard library at the top. Signing needs the
``cryptography`` package (the 'operator' extra): a missing one is one line naming the extra and exit
status 2. Bad input (a file that is not YAML, an intent that breaks the CRD's rules, a key that is not
an ed25519 PEM key) is one line naming the file and field, and exit status 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from kubeagora.extras import needs_extra

USAGE_ERROR = 2
MAX_FILE_BYTES = 1 << 20
"""An intent file larger than this (1 MiB, the API server's own object limit is ~1.5 MiB) is refused."""

intent_app = typer.Typer(name="intent", help="Sign OrchestrationIntents (ed25519) and make signing keys.",
                         no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(USAGE_ERROR)


def _read_documents(path: Path) -> list[Any]:
    import yaml

    if not path.is_file():
        raise _fail(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise _fail(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise _fail(f"{path}{where}: not YAML ({getattr(e, 'problem', None) or type(e).__name__})") from None
    return docs


@intent_app.command("sign")
def sign(
    file: Annotated[Path, typer.Argument(help="YAML file with one or more OrchestrationIntents.",
                                         show_default=False)],
    key: Annotated[Path, typer.Option("--key", help="ed25519 private key, PEM (kubeagora intent keygen, or "
                                                    "openssl genpkey -algorithm ed25519).", show_default=False)],
    namespace: Annotated[str, typer.Option(
        "--namespace", "-n", help="Namespace of intents that name none (the signature covers it; it is written "
                                  "into the output so the intent is applied there).")] = "default",
    in_place: Annotated[bool, typer.Option("--in-place", help="Rewrite FILE (its comments are not kept) instead "
                                                              "of printing the signed YAML.")] = False,
) -> None:
    """Sign every OrchestrationIntent in FILE: the annotation kubeagora.io/signature covers its spec, namespace
    and name. Prints the signed YAML (apply it with: kubectl apply -f -)."""
    with needs_extra("operator", "intent sign"):
        import cryptography  # noqa: F401

    import yaml

    from kubeagora.model.intent import INTENT_KIND, IntentError, parse_intent
    from kubeagora.trust import intent_signing as signing

    if not key.is_file():
        raise _fail(f"--key {key}: no such file")
    try:
        private_key = signing.load_private_key(key.read_bytes()[:MAX_FILE_BYTES], f"--key {key}")
    except signing.SigningError as e:
        raise _fail(str(e)) from None
    out: list[Any] = []
    count = 0
    for i, doc in enumerate(_read_documents(file)):
        if not isinstance(doc, dict) or doc.get("kind") != INTENT_KIND:
            out.append(doc)
            continue
        meta = doc.get("metadata")
        if not isinstance(meta, dict) or not meta.get("name"):
            raise _fail(f"{file}: document {i + 1}: metadata.name: is required (the signature covers it)")
        meta.setdefault("namespace", namespace)
        try:
            parse_intent(doc)
            out.append(signing.signed(doc, private_key))
        except (IntentError, signing.SigningError) as e:
            raise _fail(f"{file}: intent {meta.get('namespace')}/{meta['name']}: {e}") from None
        count += 1
    if count == 0:
        raise _fail(f"{file}: no {INTENT_KIND} in it")
    text = yaml.safe_dump_all(out, sort_keys=False)
    if in_place:
        file.write_text(text)
        typer.echo(f"signed {count} intent(s) in {file}", err=True)
    else:
        typer.echo(text, nl=False)


@intent_app.command("keygen")
def keygen(
    name: Annotated[str, typer.Argument(help="File stem: writes NAME.key (private, mode 0600) and NAME.pub.",
                                        show_default=False)],
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant named in the policy snippet printed.")] = "default",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Make an ed25519 signing key pair, and print the OrchestrationPolicy lines that trust it."""
    with needs_extra("operator", "intent keygen"):
        import cryptography  # noqa: F401

    from kubeagora.trust import intent_signing as signing

    private_path, public_path = Path(f"{name}.key"), Path(f"{name}.pub")
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise _fail(f"{path}: exists (use --force to overwrite it)")
        if not path.parent.is_dir():
            raise _fail(f"{path.parent}: no such directory")
    private_pem, public_pem = signing.generate_keypair()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    key_id = signing.key_id(signing.load_public_key(public_pem.decode()))
    indented = "\n".join("            " + line for line in public_pem.decode().strip().splitlines())
    typer.echo(f"wrote {private_path} (keep it secret) and {public_path}; key id {key_id}\n"
               f"# add to the OrchestrationPolicy 'default':\n"
               f"spec:\n  intentSigning:\n    tenants:\n      {tenant}:\n        required: true\n"
               f"        publicKeys:\n          - |\n{indented}")
