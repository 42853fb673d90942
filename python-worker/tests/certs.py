"""Test certificates made at test time with the openssl CLI: a CA, a server and a client cert."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Dict, Sequence


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(directory: str, name: str) -> Dict[str, str]:
    """A self-signed CA (P-256) in ``directory``: ``{"cert", "key"}`` paths."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl CLI is needed to make test certificates: apt-get install openssl")
    cert, key = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return {"cert": cert, "key": key}


def make_leaf(directory: str, name: str, ca: Dict[str, str], sans: Sequence[str], usage: str) -> Dict[str, str]:
    """A certificate signed by ``ca`` with ``sans`` (``IP:…``/``DNS:…``) and extendedKeyUsage ``usage``."""
    cert, key, csr = (os.path.join(directory, f"{name}.{ext}") for ext in ("pem", "key", "csr"))
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={','.join(sans)}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca["cert"], "-CAkey", ca["key"], "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", ext)
    return {"cert": cert, "key": key}
