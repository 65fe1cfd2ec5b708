"""Who may hand you which model file: the trust model, Ed25519 signatures over manifest.json.

The trust model (README, "Which model files are safe to take from whom"):
1. Data formats (``.pte``, ``.onnx``, ``.safetensors``, plain-dict ``.pth`` read with ``weights_only=True``)
   hold numbers and a graph the runtime interprets: they load by default from anyone, after the
   manifest's sha256 and size checks.
2. Code-carrying formats (``.export.pt2``: torch unpickles entries of the archive; ``.aoti.pt2``: a
   compiled shared library) run code when loaded. They load only when the caller says it trusts them
   (``trusted=True``, like ``trust_remote_code`` in transformers) **and** the export folder's manifest
   verifies against an Ed25519 signature from a key the deployer holds.
3. The signature (``manifest.sig``, 64 raw bytes) covers the exact bytes of manifest.json, and the manifest
   holds the sha256 of every file, so one signature covers the whole folder. A sha256 alone does not:
   whoever replaces a file can rewrite the hash beside it.
4. Keys: ``python -m embodied_lib.export.trust keygen`` writes a private key (PEM, mode 0600) and its
   public key; exports made here are signed with the local key (``keys/``, git-ignored). Give the
   public key, never the private one, to whoever loads your exports.
5. The native runners check the same: sha256 of the file they load against the manifest, always; the
   signature when given ``--public-key`` (required for AOTInductor packages).

    python -m embodied_lib.export.trust keygen [--dir keys]
    python -m embodied_lib.export.trust sign exports/navigation [--key keys/signing_key.pem]
    python -m embodied_lib.export.trust verify exports/navigation [--public-key keys/signing_key.pub.pem]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from embodied_lib.config import KEYS_DIR
from embodied_lib.export.artifacts import ArtifactError

KEY_DIR = KEYS_DIR
PRIVATE_KEY_NAME = "signing_key.pem"
PUBLIC_KEY_NAME = "signing_key.pub.pem"
SIGNATURE_NAME = "manifest.sig"
MAX_KEY_BYTES = 16 * 1024


def local_public_key() -> Path:
    """The public key of this machine's export key pair (``keys/``)."""
    return KEY_DIR / PUBLIC_KEY_NAME


def generate_keypair(directory: Path = KEY_DIR, overwrite: bool = False) -> tuple[Path, Path]:
    """A new Ed25519 key pair: ``(private PEM (0600), public PEM)``. Refuses to overwrite unless asked."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    directory = Path(directory)
    private_path, public_path = directory / PRIVATE_KEY_NAME, directory / PUBLIC_KEY_NAME
    if private_path.exists() and not overwrite:
        raise FileExistsError(f"{private_path} exists; pass overwrite=True (--force) to replace the key pair")
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def ensure_local_keypair() -> Path:
    """The local private key, made on first use (the workbook signs its own exports with it)."""
    private_path = KEY_DIR / PRIVATE_KEY_NAME
    if not private_path.is_file():
        private_path, _ = generate_keypair(KEY_DIR)
    return private_path


def _read_key_file(path, what: str) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{what} {path} not found")
    if path.stat().st_size > MAX_KEY_BYTES:
        raise ArtifactError(f"{what} {path} is larger than {MAX_KEY_BYTES} bytes; not a key")
    return path.read_bytes()


def _public_key(path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(_read_key_file(path, "public key"))
    except ValueError as exc:
        raise ArtifactError(f"public key {path} is not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ArtifactError(f"public key {path} is not an Ed25519 key")
    return key


def sign_manifest(export_dir, private_key=None) -> Path:
    """Sign ``export_dir/manifest.json`` (its exact bytes) into ``manifest.sig``; default: the local key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    export_dir = Path(export_dir)
    key_path = Path(private_key) if private_key else ensure_local_keypair()
    try:
        key = load_pem_private_key(_read_key_file(key_path, "private key"), password=None)
    except (ValueError, TypeError) as exc:
        raise ArtifactError(f"private key {key_path} is not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ArtifactError(f"private key {key_path} is not an Ed25519 key")
    manifest = export_dir / "manifest.json"
    signature = export_dir / SIGNATURE_NAME
    signature.write_bytes(key.sign(manifest.read_bytes()))
    return signature


def verify_manifest(export_dir, public_key, manifest_bytes: bytes | None = None) -> None:
    """Raise ArtifactError unless ``manifest.sig`` is a valid signature of manifest.json by ``public_key``.

    ``manifest_bytes``: the manifest as the caller read it (export.manifest.read_manifest_bytes), so the bytes
    verified are the bytes the caller parses; without it, manifest.json is read here."""
    from cryptography.exceptions import InvalidSignature

    from embodied_lib.export.manifest import read_manifest_bytes

    export_dir = Path(export_dir)
    key = _public_key(public_key)
    signature = export_dir / SIGNATURE_NAME
    if not signature.is_file():
        raise ArtifactError(f"{export_dir} has no {SIGNATURE_NAME}: its manifest is not signed, so its "
                            f"code-carrying files cannot be trusted (sign it: python -m embodied_lib.export.trust sign)")
    message = manifest_bytes if manifest_bytes is not None else read_manifest_bytes(export_dir)
    try:
        key.verify(_read_key_file(signature, "signature"), message)
    except InvalidSignature:
        raise ArtifactError(f"the signature {signature} does not verify against the public key {public_key}: "
                            f"manifest.json was changed after signing, or signed by another key") from None


def main(argv=None):
    parser = argparse.ArgumentParser(description="Ed25519 keys and manifest signatures for export folders "
                                                 "(code-carrying formats load only from a verified manifest).")
    sub = parser.add_subparsers(dest="command", required=True)
    keygen = sub.add_parser("keygen", help="make a key pair")
    keygen.add_argument("--dir", type=Path, default=KEY_DIR)
    keygen.add_argument("--force", action="store_true", help="replace an existing key pair")
    sign = sub.add_parser("sign", help="sign an export folder's manifest.json")
    sign.add_argument("export_dir", type=Path)
    sign.add_argument("--key", type=Path, help=f"private key (default: {KEY_DIR / PRIVATE_KEY_NAME}, made if absent)")
    verify = sub.add_parser("verify", help="verify an export folder's manifest signature")
    verify.add_argument("export_dir", type=Path)
    verify.add_argument("--public-key", type=Path, default=local_public_key())
    args = parser.parse_args(argv)
    try:
        if args.command == "keygen":
            private_path, public_path = generate_keypair(args.dir, args.force)
            print(f"private key {private_path} (keep it), public key {public_path} (give it to loaders)")
        elif args.command == "sign":
            print(f"signed: {sign_manifest(args.export_dir, args.key)}")
        else:
            verify_manifest(args.export_dir, args.public_key)
            print(f"{args.export_dir}/manifest.json verifies against {args.public_key}")
    except (ArtifactError, FileExistsError, FileNotFoundError) as exc:
        parser.exit(1, f"error: {exc}\n")


if __name__ == "__main__":
    main()
