#!/usr/bin/env python3
"""Regenerates the seed corpora under fuzz/corpus/ from shared/testdata/keyvault-responses."""
import base64
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent
TESTDATA = ROOT.parent.parent / "shared" / "testdata" / "keyvault-responses"
if not TESTDATA.is_dir():
    TESTDATA = ROOT.parent / ".." / "shared" / "testdata" / "keyvault-responses"
CORPUS = ROOT / "corpus"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def load(name):
    return json.loads((TESTDATA / name).read_text())


ATTRS = {
    "csi.storage.k8s.io/pod.name": "app",
    "csi.storage.k8s.io/pod.namespace": "default",
    "csi.storage.k8s.io/pod.uid": "0b6d6f4c-1111-2222-3333-444455556666",
    "keyvaultName": "kv",
    "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "usePodIdentity": "false",
    "objects": "array:\n  - |\n    objectName: s\n    objectType: secret\n",
}

# mount_input_decode: attributes 0xff secrets 0xff permission
put("mount_input_decode", "plain", json.dumps(ATTRS).encode() + b"\xff" + b'{"clientid":"a","clientsecret":"b"}' + b"\xff420")
put("mount_input_decode", "null-secrets", b'{"a":"b"}\xffnull\xff"420"')
put("mount_input_decode", "tokens", json.dumps({"csi.storage.k8s.io/serviceAccount.tokens": '{"api://AzureADTokenExchange":{"token":"x","expirationTimestamp":"2030-01-01T00:00:00Z"}}'}).encode() + b"\xff\xff511")

# parse_params: mode byte, then attributes JSON (even) or objects YAML (odd)
put("parse_params", "attrs", b"\x00" + json.dumps(ATTRS).encode())
put("parse_params", "attrs-sp", b"\x04" + json.dumps({**ATTRS, "cloudName": "AzureUSGovernmentCloud"}).encode())
put("parse_params", "objects-all", b"\x01" + b"""array:
  - |
    objectName: s
    objectType: secret
    objectAlias: dir/s.txt
    objectVersion: abc
    objectEncoding: base64
    filePermission: "0600"
  - |
    objectName: k
    objectType: key
    objectVersionHistory: 3
  - |
    objectName: c
    objectType: cert
    objectFormat: pfx
""")
put("parse_params", "objects-wi", b"\x03array:\n  - |\n    objectName: s\n    objectType: secret\n")

# render_pkcs12: mode byte, then DER
for f in TESTDATA.glob("secret-cert-backed-pkcs12-*.json"):
    der = base64.b64decode(load(f.name)["value"])
    put("render_pkcs12", f.stem, b"\x03" + der)
    put("render_pkcs12", f.stem + "-pfx", b"\x04" + der)

# render_pem: mode byte, then PEM text
for f in TESTDATA.glob("secret-cert-backed-pem-*.json"):
    pem = load(f.name)["value"].encode()
    put("render_pem", f.stem, b"\x03" + pem)
    put("render_pem", f.stem + "-pfx", b"\x06" + pem)
put("render_pem", "plain-base64", b"\x28aGVsbG8=")
put("render_pem", "plain-hex", b"\x3068656c6c6f")

# render_jwk: key bundles as stored, and certificate bundles (cer)
for f in list(TESTDATA.glob("key-*.json")) + list(TESTDATA.glob("certificate-*.json")):
    if "versions-page" in f.name:
        continue
    put("render_jwk", f.stem, (TESTDATA / f.name).read_bytes())


# grpc_authority: HTTP/2 client preface, SETTINGS, HEADERS with literal headers
def frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    # literal header field without indexing, new name, no Huffman
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def indexed_literal(name, value):
    # literal with incremental indexing (enters the dynamic table)
    return b"\x40" + bytes([len(name)]) + name + bytes([len(value)]) + value


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = frame(0x4, 0, 0, b"")
for name, auth in [("socket-path", b"/var/run/secrets-store-csi-providers/azure.sock"), ("localhost", b"localhost"), ("spaces", b"an arbitrary string")]:
    block = (b"\x83"  # :method POST
             + b"\x86"  # :scheme http
             + literal(b":path", b"/v1alpha1.CSIDriverProvider/Version")
             + indexed_literal(b":authority", auth)
             + literal(b"content-type", b"application/grpc")
             + literal(b"te", b"trailers"))
    headers = frame(0x1, 0x4, 1, block)
    data = frame(0x0, 0x1, 1, b"\x00\x00\x00\x00\x0a\x0a\x08v1alpha1")
    # second stream reusing the dynamic table entry (index 62)
    headers2 = frame(0x1, 0x4, 3, b"\x83\x86" + literal(b":path", b"/v1alpha1.CSIDriverProvider/Version") + b"\xbe")
    put("grpc_authority", name, PREFACE + SETTINGS + headers + data + headers2)
# split into HEADERS + CONTINUATION, padded, with priority
block = b"\x83\x86" + literal(b":path", b"/x") + literal(b":authority", b"/tmp/a b.sock")
half = len(block) // 2
padded = bytes([3]) + b"\x00\x00\x00\x03\x10" + block[:half] + b"\x00\x00\x00"
put("grpc_authority", "continuation", PREFACE + SETTINGS + frame(0x1, 0x8 | 0x20, 1, padded) + frame(0x9, 0x4, 1, block[half:]))
put("grpc_authority", "not-h2", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

# generated PFX chains from the render fixtures (chain ordering, legacy ciphers, key bags)
FIXTURES = ROOT.parent / "tests" / "fixtures" / "pkcs12"
for f in ["ec-chain-aes256.p12", "ec-chain-legacy-3des.p12", "ec-chain-keybag.p12", "rsa-chain-legacy-rc2.p12", "ec-chain-bare-leaf.p12"]:
    put("render_pkcs12", f.replace(".p12", ""), b"\x03" + (FIXTURES / f).read_bytes())
for f in ["ec-chain-expected.pem"]:
    put("render_pem", f.replace(".pem", ""), b"\x07" + (FIXTURES / f).read_bytes())
