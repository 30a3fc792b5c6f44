"""A LOCAL STAND-IN for the Hugging Face Hub, at the HTTP level: the part of the Hub's API that
huggingface_hub 2.4 uses to create a repo, commit files (regular ones inline, binary ones through Git
LFS) and download them. The real Hub cannot be reached from here; tunebench's real hub code
(HfApi.create_repo / create_commit, hf_hub_download) runs unchanged against this server, pointed at
it through `hub.endpoint`.

    python tests/hub_standin.py --root DIR --token TOKEN [--port 0]    (prints "listening on URL")

What it does, as the Hub does:
- bearer-token auth (writes always; reads of private repos), 401/404 with the X-Error-Code headers
  huggingface_hub turns into its typed errors; a new repo gets the Hub's default .gitattributes;
- `preupload` answers each file's upload mode and remote oid (so unchanged files are skipped). A file
  is "lfs" when the .gitattributes at that revision tracks it with filter=lfs (*.safetensors, *.bin,
  *.png, ...), when it is larger than 10 MiB, or when its sample (the first 512 bytes the client
  sends) is binary: a NUL byte or not UTF-8. Otherwise "regular". (Empty files the client always
  sends inline; so does the Hub accept them.)
- the Git LFS batch API (`POST {repo}.git/info/lfs/objects/batch`, operation upload, basic transfer):
  an object already stored gets no actions; a new one an `upload` href, signed and short-lived, on a
  second origin (as S3 is for the Hub: the client sends no token there), and a `verify` href on the
  Hub. The PUT is checked against the announced sha256 and size and stored by its sha256 oid;
- `commit` (NDJSON): `file` entries (base64) become git blobs, `lfsFile` entries (sha256 oid, size)
  must name an uploaded object of that size; a regular file the preupload rule calls "lfs" (binary,
  tracked, or over 10 MiB) is refused as the Hub refuses it, so a client that stops using LFS fails;
- `resolve` at a branch or a commit sha: a regular file is served with X-Repo-Commit / ETag /
  Content-Length; an LFS file answers 302 to a signed URL on the storage origin, with X-Linked-Etag
  (its sha256) and X-Linked-Size, as the Hub answers before its CDN.

What it leaves out: Xet (it sends no X-Xet-Hash and refuses the xet token routes; huggingface_hub 2.4
uploads through Xet whenever hf_xet is installed, so the tests run the client with
HF_HUB_DISABLE_XET=1), LFS multipart transfers (no chunk_size is offered), LFS downloads through the
batch API (git clients), pull requests, .gitignore, rate limits. Every request is appended to
DIR/requests.jsonl for the tests ("server": "hub" or "storage", plus what the request moved: the
commit's regular and LFS paths, the uploaded oids); `head_tree` / `read_file` read what is stored.
"""

from __future__ import annotations

import argparse
import base64
import codecs
import fnmatch
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LOCK = threading.RLock()

LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub refuses regular files larger than 10 MiB
SAMPLE_SIZE = 512  # what huggingface_hub's UploadInfo.sample holds
URL_TTL_S = 900

# The .gitattributes the Hub writes into a new repo (model repos: the first block; dataset repos also
# track audio, images, video and packed datasets).
_LFS_MODEL = ("*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack "
              "*.npy *.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors "
              "saved_model/**/* *.tar.* *.tar *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*").split()
_LFS_DATASET = _LFS_MODEL + ("*.lz4 *.mds *.pcm *.sam *.raw *.aac *.flac *.mp3 *.ogg *.wav *.bmp *.gif *.png "
                             "*.tiff *.jpg *.jpeg *.webp *.mp4 *.webm").split()


def default_gitattributes(repo_type: str) -> bytes:
    patterns = _LFS_DATASET if repo_type == "dataset" else _LFS_MODEL
    return "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in patterns).encode()


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


# -- which files go through LFS --------------------------------------------------------------------
def lfs_rules(gitattributes: bytes | None) -> list[tuple[str, bool]]:
    """(pattern, tracked) for every .gitattributes line that sets or unsets the filter; later wins."""
    rules = []
    for line in (gitattributes or b"").decode("utf-8", "replace").splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        for attr in fields[1:]:
            if attr.startswith("filter="):
                rules.append((fields[0], attr == "filter=lfs"))
            elif attr in ("-filter", "!filter"):
                rules.append((fields[0], False))
    return rules


def tracked_by_lfs(path: str, rules: list[tuple[str, bool]]) -> bool:
    """git's matching, as far as the Hub's templates need: a pattern without a slash matches the
    file's name in any folder; one with a slash matches the path from the repo's root."""
    tracked = False
    name = path.rsplit("/", 1)[-1]
    for pattern, lfs in rules:
        if "/" in pattern.rstrip("/"):
            hit = fnmatch.fnmatchcase(path, pattern.lstrip("/")) or fnmatch.fnmatchcase(
                path, pattern.lstrip("/").replace("/**/", "/"))
        else:
            hit = fnmatch.fnmatchcase(name, pattern)
        if hit:
            tracked = lfs
    return tracked


def looks_binary(sample: bytes) -> bool:
    """A NUL byte (git's own test), or bytes that are not UTF-8 text (a multi-byte character cut at
    the sample's end is still text)."""
    if b"\0" in sample:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return True
    return False


def upload_mode(path: str, sample: bytes, size: int, rules: list[tuple[str, bool]]) -> str:
    if tracked_by_lfs(path, rules) or size > LFS_SIZE_THRESHOLD or looks_binary(sample[:SAMPLE_SIZE]):
        return "lfs"
    return "regular"


# -- storage ---------------------------------------------------------------------------------------
class Store:
    """repos/<type>/<org>/<name>/{repo.json, commits/<sha>.json}, blobs/<git oid> (regular files and
    LFS pointers), lfs/<sha256> (LFS objects). A commit's tree maps each path to {"oid": git oid},
    plus {"lfs": sha256, "size": n} for an LFS file (its oid is then the pointer's)."""

    def __init__(self, root: Path):
        self.root = root
        for sub in ("blobs", "lfs"):
            (root / sub).mkdir(parents=True, exist_ok=True)

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
        tree = self.commit(repo_type, repo_id, sha) if re.fullmatch(r"[0-9a-f]{40}", sha) else None
        return (sha, tree) if tree is not None else None

    def put_blob(self, data: bytes) -> str:
        oid = git_oid(data)
        (self.root / "blobs" / oid).write_bytes(data)
        return oid

    def blob(self, oid: str) -> bytes:
        return (self.root / "blobs" / oid).read_bytes()

    def lfs_path(self, oid: str) -> Path:
        return self.root / "lfs" / oid

    def lfs_size(self, oid: str) -> int | None:
        path = self.lfs_path(oid)
        return path.stat().st_size if path.is_file() else None

    def put_lfs(self, oid: str, data: bytes) -> None:
        tmp = self.lfs_path(f".{oid}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        tmp.replace(self.lfs_path(oid))

    def read(self, entry: dict) -> bytes:
        return self.lfs_path(entry["lfs"]).read_bytes() if "lfs" in entry else self.blob(entry["oid"])

    def rules(self, tree: dict) -> list[tuple[str, bool]]:
        entry = tree.get(".gitattributes")
        return lfs_rules(self.read(entry) if entry else None)

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


def head_tree(root: Path, repo_type: str, repo_id: str, revision: str = "main") -> dict:
    """For tests: the tree at `revision`, read from the stand-in's storage folder."""
    found = Store(root).resolve(repo_type, repo_id, revision)
    assert found is not None, f"{repo_type} {repo_id} has no revision {revision}"
    return found[1]["tree"]


def read_file(root: Path, repo_type: str, repo_id: str, path: str, revision: str = "main") -> bytes:
    """For tests: a file's bytes at `revision`, LFS or not."""
    return Store(root).read(head_tree(root, repo_type, repo_id, revision)[path])


# -- HTTP ------------------------------------------------------------------------------------------
class _Base(BaseHTTPRequestHandler):
    store: Store
    token: str
    secret: bytes
    server_name_: str  # "hub" or "storage", in requests.jsonl
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet; requests.jsonl has them
        pass

    def _start(self) -> None:
        """Read the whole body first: on a kept-alive connection an unread body would be taken for
        the next request."""
        self.note: dict = {}
        self.body = self._read_body() if self.command in ("POST", "PUT") else b""

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized(self) -> bool | None:
        """True: the right token; False: a wrong one; None: none sent."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        return header == f"Bearer {self.token}"

    def _record(self, status: int) -> None:
        entry = {"server": self.server_name_, "method": self.command, "path": unquote(urlsplit(self.path).path),
                 "status": status, "auth": self._authorized(), **self.note}
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

    def _json(self, status: int, doc, headers: dict | None = None,
              content_type: str = "application/json") -> None:
        self._send(status, json.dumps(doc).encode(), headers, content_type)

    def _error(self, status: int, message: str, code: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def _sign(self, action: str, oid: str, size: int, expires: int) -> str:
        return hmac.new(self.secret, f"{action}\n{oid}\n{size}\n{expires}".encode(), hashlib.sha256).hexdigest()


class StorageHandler(_Base):
    """The object store behind LFS (S3 and the CDN, for the Hub): signed URLs, no token."""

    server_name_ = "storage"

    def _signed(self, action: str) -> tuple[str, int] | None:
        parts = urlsplit(self.path)
        m = re.fullmatch(r"/(upload|objects)/([0-9a-f]{64})", parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            oid, size, expires = m[2], int(query["size"]), int(query["expires"])
        except (TypeError, KeyError, ValueError):
            self._error(404, f"no route {parts.path}")
            return None
        if m[1] != action or not hmac.compare_digest(self._sign(action, oid, size, expires), query.get("sig", "")):
            self._error(403, "SignatureDoesNotMatch")
            return None
        if expires < time.time():
            self._error(403, "Request has expired")
            return None
        return oid, size

    def do_PUT(self):  # noqa: N802
        self._start()
        signed = self._signed("upload")
        if signed is None:
            return None
        oid, size = signed
        self.note = {"oid": oid, "size": len(self.body)}
        if len(self.body) != size or hashlib.sha256(self.body).hexdigest() != oid:
            return self._error(400, f"the object does not match its oid and size ({oid}, {size} bytes)",
                               "BadDigest")
        with LOCK:
            self.store.put_lfs(oid, self.body)
        return self._send(200, b"", {"ETag": f'"{oid}"'})

    def do_GET(self):  # noqa: N802
        self._start()
        signed = self._signed("objects")
        if signed is None:
            return None
        oid, size = signed
        self.note = {"oid": oid}
        if self.store.lfs_size(oid) != size:
            return self._error(404, "NoSuchKey")
        return self._send(200, self.store.lfs_path(oid).read_bytes(), {"ETag": f'"{oid}"'},
                          content_type="application/octet-stream")

    do_HEAD = do_GET  # noqa: N815


class HubHandler(_Base):
    server_name_ = "hub"
    storage_url: str

    # -- helpers -------------------------------------------------------------------------------
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

    def _storage_href(self, action: str, oid: str, size: int) -> str:
        expires = int(time.time()) + URL_TTL_S
        return (f"{self.storage_url}/{action}/{oid}?size={size}&expires={expires}"
                f"&sig={self._sign(action, oid, size, expires)}")

    # -- routes --------------------------------------------------------------------------------
    def do_POST(self):  # noqa: N802
        self._start()
        path = unquote(urlsplit(self.path).path)
        with LOCK:
            if path == "/api/repos/create":
                return self._create()
            m = re.fullmatch(r"/(datasets/|spaces/)?([^/]+/[^/]+?)\.git/info/lfs/objects/(batch|verify)", path)
            if m:
                repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(m[1] or "", "model")
                if not self._need_write() or self._readable(repo_type, m[2]) is None:
                    return None
                return self._lfs_batch(repo_type, m[2]) if m[3] == "batch" else self._lfs_verify()
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
        doc = json.loads(self.body)
        repo_type = doc.get("type") or "model"
        repo_id = f"{doc['organization']}/{doc['name']}" if doc.get("organization") else doc["name"]
        url = f"http://{self.headers['Host']}/{PREFIX[repo_type]}{repo_id}"
        if self.store.repo(repo_type, repo_id) is not None:
            return self._json(409, {"error": "You already created this repo", "url": url},
                              {"X-Error-Message": "You already created this repo"})
        self.store.save_repo(repo_type, repo_id, {"private": doc.get("visibility", "public") != "public",
                                                  "refs": {}})
        tree = {".gitattributes": {"oid": self.store.put_blob(default_gitattributes(repo_type))}}
        self.store.new_commit(repo_type, repo_id, "main", tree, "initial commit")
        return self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _preupload(self, repo_type, repo_id, revision):
        found = self.store.resolve(repo_type, repo_id, revision)
        tree = found[1]["tree"] if found else {}
        rules = self.store.rules(tree)
        answers = []
        for f in json.loads(self.body)["files"]:
            mode = upload_mode(f["path"], base64.b64decode(f.get("sample") or ""), int(f["size"]), rules)
            entry = tree.get(f["path"])
            # the remote oid the client compares with its own: sha256 for LFS, the git oid otherwise
            oid = None if entry is None else entry["lfs"] if mode == "lfs" and "lfs" in entry else entry["oid"]
            answers.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self.note = {"lfs": sorted(a["path"] for a in answers if a["uploadMode"] == "lfs")}
        return self._json(200, {"files": answers})

    def _lfs_batch(self, repo_type, repo_id):
        doc = json.loads(self.body)
        if doc.get("operation") != "upload":
            return self._error(422, "the stand-in's LFS batch API takes operation upload only")
        if "basic" not in (doc.get("transfers") or ["basic"]) or doc.get("hash_algo", "sha256") != "sha256":
            return self._error(422, "the stand-in offers the basic transfer of sha256 objects only")
        ref = (doc.get("ref") or {}).get("name", "main").removeprefix("refs/heads/")
        if self.store.resolve(repo_type, repo_id, ref) is None:
            return self._error(404, f"revision {ref} not found", "RevisionNotFound")
        objects, noted = [], []
        for obj in doc.get("objects") or []:
            oid, size = obj.get("oid"), obj.get("size")
            if not (isinstance(oid, str) and re.fullmatch(r"[0-9a-f]{64}", oid) and isinstance(size, int)
                    and size >= 0):
                objects.append({"oid": str(oid), "size": size if isinstance(size, int) else 0,
                                "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            answer = {"oid": oid, "size": size, "authenticated": True}
            if self.store.lfs_size(oid) != size:  # new: where to put it, and how to tell the Hub it is there
                base = f"http://{self.headers['Host']}/{PREFIX[repo_type]}{repo_id}.git/info/lfs/objects"
                answer["actions"] = {"upload": {"href": self._storage_href("upload", oid, size), "expires_in": URL_TTL_S},
                                     "verify": {"href": f"{base}/verify", "expires_in": URL_TTL_S}}
            objects.append(answer)
            noted.append({"oid": oid, "size": size, "upload": "actions" in answer})
        self.note = {"objects": noted}
        return self._json(200, {"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def _lfs_verify(self):
        doc = json.loads(self.body)
        self.note = {"oid": doc.get("oid")}
        if self.store.lfs_size(str(doc.get("oid"))) != doc.get("size"):
            return self._error(404, f"LFS object {doc.get('oid')} of {doc.get('size')} bytes was not uploaded")
        return self._json(200, {"success": True})

    def _commit(self, repo_type, repo_id, revision):
        lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        found = self.store.resolve(repo_type, repo_id, revision)
        if found is None:
            return self._error(404, f"revision {revision} not found", "RevisionNotFound")
        tree = dict(found[1]["tree"])
        rules = self.store.rules(tree)
        regular, lfs, refused = [], [], []
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                if value.get("encoding") != "base64":
                    return self._error(400, "only base64 content")
                data = base64.b64decode(value["content"])
                if data and upload_mode(value["path"], data[:SAMPLE_SIZE], len(data), rules) == "lfs":
                    refused.append((value["path"], len(data)))  # binary or large: through LFS only
                    continue
                tree[value["path"]] = {"oid": self.store.put_blob(data)}
                regular.append(value["path"])
            elif line["key"] == "lfsFile":
                oid, size, algo = value.get("oid"), value.get("size"), value.get("algo", "sha256")
                stored = self.store.lfs_size(str(oid))
                if algo != "sha256" or stored is None or (size is not None and size != stored):
                    return self._error(400, f"lfsFile {value['path']}: no LFS object {oid} of {size} bytes "
                                            "was uploaded")
                tree[value["path"]] = {"oid": self.store.put_blob(lfs_pointer(oid, stored)), "lfs": oid,
                                       "size": stored}
                lfs.append(value["path"])
            elif line["key"] == "deletedFile":
                tree.pop(value["path"], None)
            elif line["key"] == "deletedFolder":
                tree = {p: o for p, o in tree.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            elif line["key"] != "header":
                return self._error(400, f"the stand-in does not take {line['key']} entries")
        self.note = {"regular": regular, "lfs": lfs}
        if refused:  # the Hub's words
            self.note["refused"] = [p for p, _ in refused]
            offending = "Offending files: " + " ".join(f"- {p} (ref: refs/heads/{revision})" for p, _ in refused)
            if any(size > LFS_SIZE_THRESHOLD for _, size in refused):
                return self._error(400, "Your push was rejected because it contains files larger than 10 MiB. "
                                        "Please use https://git-lfs.github.com/ to store large files. " + offending)
            return self._error(400, "Your push was rejected because it contains binary files. Please use "
                                    "https://huggingface.co/docs/hub/xet to store binary files. " + offending)
        sha = self.store.new_commit(repo_type, repo_id, revision, tree, header["summary"])
        base = f"http://{self.headers['Host']}/{PREFIX[repo_type]}{repo_id}"
        return self._json(200, {"commitUrl": f"{base}/commit/{sha}", "commitOid": sha, "success": True})

    def do_GET(self):  # noqa: N802
        self._start()
        path = unquote(urlsplit(self.path).path)
        with LOCK:
            if re.fullmatch(r"/api/(models|datasets|spaces)/[^/]+/[^/]+/xet-(read|write)-token/.*", path):
                return self._error(501, "this stand-in of the Hub speaks Git LFS, not Xet: run the client "
                                        "with HF_HUB_DISABLE_XET=1")
            m = re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/revision/(.+))?", path)
            if m:
                return self._info(TYPES[m[1]], m[2], m[3] or "main")
            return self._resolve(path)

    def do_HEAD(self):  # noqa: N802
        self._start()
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
        entry = commit["tree"].get(filename)
        if entry is None:
            return self._error(404, f"{filename} not found", "EntryNotFound")
        if "lfs" in entry:  # the Hub redirects to its CDN: the file's own etag and size ride on the redirect
            self.note = {"lfs": True}
            location = self._storage_href("objects", entry["lfs"], entry["size"])
            return self._send(302, f"Found. Redirecting to {location}".encode(),
                              {"Location": location, "X-Repo-Commit": sha, "ETag": f'"{entry["oid"]}"',
                               "X-Linked-Etag": f'"{entry["lfs"]}"', "X-Linked-Size": str(entry["size"])},
                              content_type="text/plain; charset=utf-8")
        return self._send(200, self.store.blob(entry["oid"]), {"X-Repo-Commit": sha, "ETag": f'"{entry["oid"]}"'},
                          content_type="application/octet-stream")


class StandIn:
    """The Hub's API on one port, its LFS object storage on another (another origin, as S3 is)."""

    def __init__(self, root: Path, token: str, port: int = 0):
        store, secret = Store(root), secrets.token_bytes(32)
        common = {"store": store, "token": token, "secret": secret}
        self.storage = ThreadingHTTPServer(("127.0.0.1", 0), type("Storage", (StorageHandler,), common))
        storage_url = f"http://127.0.0.1:{self.storage.server_address[1]}"
        self.hub = ThreadingHTTPServer(("127.0.0.1", port),
                                       type("Hub", (HubHandler,), {**common, "storage_url": storage_url}))
        self.url = f"http://127.0.0.1:{self.hub.server_address[1]}"

    def serve_forever(self) -> None:
        threading.Thread(target=self.storage.serve_forever, daemon=True).start()
        self.hub.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--token", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    standin = StandIn(args.root, args.token, args.port)
    print(f"listening on {standin.url}", flush=True)
    standin.serve_forever()


if __name__ == "__main__":
    main()
