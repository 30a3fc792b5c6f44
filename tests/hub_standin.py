"""A LOCAL STAND-IN for the Hugging Face Hub, at the HTTP level: the part of the Hub's API that
huggingface_hub 2.4 uses to create a repo, commit files and download them. The real Hub cannot be
reached from here; tunebench's real hub code (HfApi.create_repo / create_commit, hf_hub_download)
runs unchanged against this server, pointed at it through `hub.endpoint`.

    python tests/hub_standin.py --root DIR --token TOKEN [--port 0]    (prints "listening on URL")

What it does, as the Hub does: bearer-token auth (writes always; reads of private repos), 401/404
with the X-Error-Code headers huggingface_hub turns into its typed errors, content-addressed blobs
(git sha1 oids), one commit per create_commit, `preupload` answering each file's remote oid so that
unchanged files are skipped, `resolve` at a branch or a commit sha with X-Repo-Commit / ETag /
Content-Length headers. What it leaves out: LFS and Xet (every file is "regular"), pull requests,
gitattributes, rate limits. Every request is appended to DIR/requests.jsonl for the tests.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LOCK = threading.RLock()


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Store:
    """repos/<type>/<org>/<name>/{repo.json, commits/<sha>.json}, blobs/<oid>."""

    def __init__(self, root: Path):
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)

    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / repo_type / repo_id

    def repo(self, repo_type: str, repo_id: str) -> dict | None:
        path = self.repo_dir(repo_type, repo_id) / "repo.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def save_repo(self, repo_type: str, repo_id: str, doc: dict) -> None:
        path = self.repo_dir(repo_type, repo_id) / "repo.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))

    def commit(self, repo_type: str, repo_id: str, sha: str) -> dict | None:
        path = self.repo_dir(repo_type, repo_id) / "commits" / f"{sha}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> tuple[str, dict] | None:
        repo = self.repo(repo_type, repo_id)
        sha = repo["refs"].get(revision, revision)
        tree = self.commit(repo_type, repo_id, sha)
        return (sha, tree) if tree is not None else None

    def put_blob(self, data: bytes) -> str:
        oid = git_oid(data)
        (self.root / "blobs" / oid).write_bytes(data)
        return oid

    def blob(self, oid: str) -> bytes:
        return (self.root / "blobs" / oid).read_bytes()

    def new_commit(self, repo_type: str, repo_id: str, branch: str, tree: dict, message: str) -> str:
        repo = self.repo(repo_type, repo_id)
        parent = repo["refs"].get(branch)
        doc = {"parent": parent, "tree": tree, "message": message}
        sha = hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        path = self.repo_dir(repo_type, repo_id) / "commits" / f"{sha}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
        repo["refs"][branch] = sha
        self.save_repo(repo_type, repo_id, repo)
        return sha


class Handler(BaseHTTPRequestHandler):
    store: Store
    token: str
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet; requests.jsonl has them
        pass

    # -- helpers -------------------------------------------------------------------------------
    def _authorized(self) -> bool | None:
        """True: the right token; False: a wrong one; None: none sent."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        return header == f"Bearer {self.token}"

    def _record(self, status: int) -> None:
        entry = {"method": self.command, "path": urlsplit(self.path).path, "status": status,
                 "auth": self._authorized()}
        with LOCK, open(self.store.root / "requests.jsonl", "a") as fh:
            fh.write(json.dumps(entry) + "\n")

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json") -> None:
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, doc, headers: dict | None = None) -> None:
        self._send(status, json.dumps(doc).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _need_write(self) -> bool:
        auth = self._authorized()
        if auth is True:
            return True
        self._error(401, "Invalid credentials in Authorization header" if auth is False
                    else "You must be authenticated to access this resource")
        return False

    def _readable(self, repo_type: str, repo_id: str) -> dict | None:
        repo = self.store.repo(repo_type, repo_id)
        if repo is None or (repo["private"] and self._authorized() is not True):
            # the Hub answers a private repo without the right token as if it did not exist
            self._error(404 if repo is None else 401, "Repository not found", "RepoNotFound")
            return None
        return repo

    # -- routes --------------------------------------------------------------------------------
    def do_POST(self):  # noqa: N802
        path = unquote(urlsplit(self.path).path)
        with LOCK:
            if path == "/api/repos/create":
                return self._create()
            m = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit)/(.+)", path)
            if not m:
                return self._error(404, f"no route {path}")
            repo_type, repo_id, action, revision = TYPES[m[1]], m[2], m[3], m[4]
            if not self._need_write() or self._readable(repo_type, repo_id) is None:
                return None
            if action == "preupload":
                return self._preupload(repo_type, repo_id, revision)
            return self._commit(repo_type, repo_id, revision)

    def _create(self):
        if not self._need_write():
            return None
        doc = json.loads(self._body())
        repo_type = doc.get("type") or "model"
        repo_id = f"{doc['organization']}/{doc['name']}" if doc.get("organization") else doc["name"]
        url = f"http://{self.headers['Host']}/{PREFIX[repo_type]}{repo_id}"
        if self.store.repo(repo_type, repo_id) is not None:
            return self._json(409, {"error": "You already created this repo", "url": url},
                              {"X-Error-Message": "You already created this repo"})
        self.store.save_repo(repo_type, repo_id, {"private": doc.get("visibility", "public") != "public",
                                                  "refs": {}})
        tree = {".gitattributes": self.store.put_blob(b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n")}
        self.store.new_commit(repo_type, repo_id, "main", tree, "initial commit")
        return self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _preupload(self, repo_type, repo_id, revision):
        found = self.store.resolve(repo_type, repo_id, revision)
        tree = found[1]["tree"] if found else {}
        files = json.loads(self._body())["files"]
        return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                           "oid": tree.get(f["path"])} for f in files]})

    def _commit(self, repo_type, repo_id, revision):
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        found = self.store.resolve(repo_type, repo_id, revision)
        if found is None:
            return self._error(404, f"revision {revision} not found", "RevisionNotFound")
        tree = dict(found[1]["tree"])
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                if value.get("encoding") != "base64":
                    return self._error(400, "only base64 content")
                tree[value["path"]] = self.store.put_blob(base64.b64decode(value["content"]))
            elif line["key"] == "deletedFile":
                tree.pop(value["path"], None)
            elif line["key"] == "deletedFolder":
                tree = {p: o for p, o in tree.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            elif line["key"] != "header":
                return self._error(400, f"the stand-in takes regular files only, not {line['key']}")
        sha = self.store.new_commit(repo_type, repo_id, revision, tree, header["summary"])
        base = f"http://{self.headers['Host']}/{PREFIX[repo_type]}{repo_id}"
        return self._json(200, {"commitUrl": f"{base}/commit/{sha}", "commitOid": sha, "success": True})

    def do_GET(self):  # noqa: N802
        path = unquote(urlsplit(self.path).path)
        with LOCK:
            m = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/revision/(.+))?", path)
            if m:
                return self._info(TYPES[m[1]], m[2], m[3] or "main")
            return self._resolve(path)

    def do_HEAD(self):  # noqa: N802
        with LOCK:
            return self._resolve(unquote(urlsplit(self.path).path))

    def _info(self, repo_type, repo_id, revision):
        repo = self._readable(repo_type, repo_id)
        if repo is None:
            return None
        found = self.store.resolve(repo_type, repo_id, revision)
        if found is None:
            return self._error(404, f"revision {revision} not found", "RevisionNotFound")
        sha, commit = found
        return self._json(200, {"id": repo_id, "sha": sha, "private": repo["private"],
                                "siblings": [{"rfilename": p} for p in sorted(commit["tree"])]})

    def _resolve(self, path):
        m = re.fullmatch(r"/(datasets/|spaces/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if not m:
            return self._error(404, f"no route {path}")
        repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(m[1] or "", "model")
        repo_id, revision, filename = m[2], m[3], m[4]
        if self._readable(repo_type, repo_id) is None:
            return None
        found = self.store.resolve(repo_type, repo_id, revision)
        if found is None:
            return self._error(404, f"revision {revision} not found", "RevisionNotFound")
        sha, commit = found
        oid = commit["tree"].get(filename)
        if oid is None:
            return self._error(404, f"{filename} not found", "EntryNotFound")
        data = self.store.blob(oid)
        return self._send(200, data, {"X-Repo-Commit": sha, "ETag": f'"{oid}"'},
                          content_type="application/octet-stream")


def serve(root: Path, token: str, port: int = 0) -> ThreadingHTTPServer:
    handler = type("StandinHandler", (Handler,), {"store": Store(root), "token": token})
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--token", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = serve(args.root, args.token, args.port)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
