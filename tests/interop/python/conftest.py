"""Fixtures: the shipped provider binary on a fresh socket, and stubs generated
from the repository's proto at test time (never committed)."""

import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN_ENV = "RUST_AZURE_PROVIDER_BIN"
FULL_ENV = "RUST_AZURE_INTEROP_FULL"
SOCKET_NAME = "rust-azure.sock"


def full_mode() -> bool:
    """Success-path assertions are switched on once a fake Azure is wired in."""
    return os.environ.get(FULL_ENV) == "1"


@pytest.fixture(scope="session")
def crate_version() -> str:
    with open(REPO / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["package"]["version"]


@pytest.fixture(scope="session")
def provider_bin() -> Path:
    value = os.environ.get(BIN_ENV)
    if not value:
        pytest.fail(
            f"{BIN_ENV} is not set; build the provider (cargo build --locked) and point it "
            "at target/debug/rust-azure-provider (tests/interop/run.sh does this)"
        )
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"{BIN_ENV}={value} is not a file")
    return path


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """(service_pb2, service_pb2_grpc) generated from proto/v1alpha1/service.proto."""
    out = tmp_path_factory.mktemp("stubs")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{REPO / 'proto'}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "v1alpha1/service.proto",
        ],
        check=True,
    )
    sys.path.insert(0, str(out))
    try:
        messages = importlib.import_module("v1alpha1.service_pb2")
        services = importlib.import_module("v1alpha1.service_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return messages, services


@pytest.fixture
def provider(provider_bin):
    """Path of rust-azure.sock of a freshly started provider process."""
    # A short directory keeps the socket path far below the 108-byte limit.
    directory = Path(tempfile.mkdtemp(prefix="rap-py-"))
    log_path = directory.with_suffix(".log")
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [
            str(provider_bin),
            "--provider-dir",
            str(directory),
            "--health-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-filter",
            "rust_azure_provider=debug,h2::server=debug,warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    sock = directory / SOCKET_NAME
    try:
        deadline = time.monotonic() + 30
        while not sock.is_socket():
            if proc.poll() is not None:
                pytest.fail(f"provider exited with {proc.returncode} before creating {sock}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"provider did not create {sock} within 30s:\n{log_path.read_text()}")
            time.sleep(0.02)
        yield sock
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = "killed after ignoring SIGTERM for 15s"
        log.close()
        # pytest shows this only for failing tests.
        print(f"provider exit: {code}\nprovider output:\n{log_path.read_text()}")
        log_path.unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
        if code != 0:
            pytest.fail(f"provider did not exit cleanly after SIGTERM: {code}")
