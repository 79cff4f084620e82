"""The real parts themselves work: S3 server, kube-apiserver, and a FUSE mount in this kernel."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.realparts.fusemount import is_mounted
from tests.realparts.kubeapi import ControlPlane


def test_s3_server_put_get_list_delete(s3_client: Any, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="dir/a.txt", Body=b"alpha", Metadata={"mode": "33188"})
    s3_client.put_object(Bucket=bucket, Key="dir/b.txt", Body=b"beta")
    assert s3_client.get_object(Bucket=bucket, Key="dir/a.txt")["Body"].read() == b"alpha"
    assert s3_client.head_object(Bucket=bucket, Key="dir/a.txt")["Metadata"] == {"mode": "33188"}
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a.txt", "dir/b.txt"]
    s3_client.delete_object(Bucket=bucket, Key="dir/a.txt")
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/b.txt"]


def test_s3_server_rejects_wrong_secret(s3_server: Any, bucket: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    wrong = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="not-the-secret",
        region_name=s3_server.region,
    )
    with pytest.raises(ClientError):
        wrong.list_objects_v2(Bucket=bucket)


TEST_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.razorfs.io"},
    "spec": {
        "group": "test.razorfs.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_kube_apiserver_serves_a_custom_resource(kube_api_client: Any, kube_namespace: str) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    ext = client.ApiextensionsV1Api(kube_api_client)
    try:
        ext.create_custom_resource_definition(TEST_CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise
    custom = client.CustomObjectsApi(kube_api_client)
    body = {"apiVersion": "test.razorfs.io/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}
    deadline = time.monotonic() + 30
    while True:  # the CRD's endpoint appears a moment after it is established
        try:
            custom.create_namespaced_custom_object("test.razorfs.io", "v1", kube_namespace, "widgets", body)
            break
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    got = custom.get_namespaced_custom_object("test.razorfs.io", "v1", kube_namespace, "widgets", "w1")
    assert got["spec"] == {"size": 3}
    bad = {**body, "metadata": {"name": "w2"}, "spec": {"size": 0}}
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object("test.razorfs.io", "v1", kube_namespace, "widgets", bad)
    assert rejected.value.status == 422
    custom.delete_namespaced_custom_object("test.razorfs.io", "v1", kube_namespace, "widgets", "w1")
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object("test.razorfs.io", "v1", kube_namespace, "widgets", "w1")
    assert gone.value.status == 404


def test_kube_apiserver_kubeconfig_file_works(kube_apiserver: ControlPlane) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kube_apiserver.kubeconfig))
    names = [ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items]
    assert "default" in names


HELLO_FS = textwrap.dedent(
    '''
    import errno, os, stat, sys
    import pyfuse3, trio

    CONTENT = b"hello from a real FUSE mount\\n"

    class Hello(pyfuse3.Operations):
        async def getattr(self, inode, ctx=None):
            attr = pyfuse3.EntryAttributes()
            if inode == pyfuse3.ROOT_INODE:
                attr.st_mode, attr.st_size = stat.S_IFDIR | 0o755, 0
            elif inode == 2:
                attr.st_mode, attr.st_size = stat.S_IFREG | 0o644, len(CONTENT)
            else:
                raise pyfuse3.FUSEError(errno.ENOENT)
            attr.st_ino = inode
            return attr
        async def lookup(self, parent, name, ctx=None):
            if parent != pyfuse3.ROOT_INODE or name != b"hello.txt":
                raise pyfuse3.FUSEError(errno.ENOENT)
            return await self.getattr(2)
        async def opendir(self, inode, ctx):
            return inode
        async def readdir(self, fh, off, token):
            if off == 0:
                pyfuse3.readdir_reply(token, b"hello.txt", await self.getattr(2), 1)
        async def open(self, inode, flags, ctx):
            return pyfuse3.FileInfo(fh=inode)
        async def read(self, fh, off, size):
            return CONTENT[off:off + size]

    pyfuse3.init(Hello(), sys.argv[1], set(pyfuse3.default_options))
    print("ready", flush=True)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)
    '''
)


def test_fuse_mount_of_a_trivial_filesystem_reads(fuse_mountpoint: Path, tmp_path: Path) -> None:
    script = tmp_path / "hellofs.py"
    script.write_text(HELLO_FS)
    proc = subprocess.Popen([sys.executable, str(script), str(fuse_mountpoint)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 10
        while not is_mounted(fuse_mountpoint) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.listdir(fuse_mountpoint) == ["hello.txt"]
        assert (fuse_mountpoint / "hello.txt").read_bytes() == b"hello from a real FUSE mount\n"
        assert stat.S_ISREG(os.stat(fuse_mountpoint / "hello.txt").st_mode)
        with pytest.raises(OSError) as missing:
            os.stat(fuse_mountpoint / "absent")
        assert missing.value.errno == errno.ENOENT
    finally:
        subprocess.run(["fusermount3", "-u", str(fuse_mountpoint)], capture_output=True)
        proc.wait(timeout=10)
