"""What travels between the checker and the answer's process: plain data, never objects.

A message is JSON (None, booleans, numbers, strings, lists, string-keyed dicts) with NumPy
arrays of numbers and booleans beside it as raw bytes, and two more shapes: tuples, and
`Tag`s, a kind and its fields, for the things an answer returns that are neither (a tensor, a
node of a Value graph, an object of some other type). Reading one runs no code of the sender's
(no pickle): a float subclass whose `==` is always true arrives as a float, an array of objects
does not arrive at all. Each message is framed by its two lengths, and `receive` waits for it
at most until a deadline.
"""

import json
import math
import select
import struct
import time

import numpy as np

MAX_BYTES = 256 * 2**20  # one message: far above any case's arrays
DTYPES = {"|b1", "|i1", "|u1", "<i2", "<i4", "<i8", "<u2", "<u4", "<u8", "<f2", "<f4", "<f8"}
HEADER = struct.Struct(">QQ")  # the JSON's length, the arrays' length


class Tag:
    """A typed record: `kind` ('tensor', 'node', 'other', ...) and its plain-data fields."""

    def __init__(self, kind: str, **fields):
        self.kind, self.fields = kind, fields

    def __getitem__(self, key):
        return self.fields[key]

    def get(self, key, default=None):
        return self.fields.get(key, default)

    def __repr__(self):
        return f"Tag({self.kind!r}, {self.fields!r})"


class Closed(Exception):
    """The other side closed its end (the process ended) before a whole message arrived."""


class Timeout(Exception):
    """No whole message arrived before the deadline."""


class Unreadable(Exception):
    """What arrived is not a message of plain data."""


def pack(obj) -> bytes:
    arrays: list[np.ndarray] = []

    def encode(value, depth=0):
        if depth > 64:
            raise Unreadable("nested more than 64 deep")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else {"t": "float", "v": repr(float(value))}
        if isinstance(value, np.ndarray):
            array = np.ascontiguousarray(value)
            if array.dtype.byteorder == ">":
                array = array.astype(array.dtype.newbyteorder("<"))
            if array.dtype.str not in DTYPES:
                raise Unreadable(f"an array of dtype {array.dtype}")
            arrays.append(array)
            return {"t": "array", "i": len(arrays) - 1}
        if isinstance(value, tuple):
            return {"t": "tuple", "items": [encode(v, depth + 1) for v in value]}
        if isinstance(value, list):
            return [encode(v, depth + 1) for v in value]
        if isinstance(value, dict):
            return {"t": "dict", "items": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
        if isinstance(value, Tag):
            return {"t": "tag", "kind": value.kind, "fields": encode(value.fields, depth + 1)}
        raise Unreadable(f"a {type(value).__name__}")

    body = json.dumps({"body": encode(obj), "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]},
                      allow_nan=False).encode()
    blobs = b"".join(a.tobytes() for a in arrays)
    return HEADER.pack(len(body), len(blobs)) + body + blobs


def unpack(header: bytes, blobs: bytes):
    try:
        message = json.loads(header)
    except (ValueError, RecursionError) as err:
        raise Unreadable(f"not JSON ({err})") from None
    if not isinstance(message, dict) or not isinstance(message.get("arrays"), list):
        raise Unreadable("no arrays list")
    arrays, at = [], 0
    for entry in message["arrays"]:
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] in DTYPES and isinstance(entry[1], list)
                and all(type(n) is int and 0 <= n < 2**40 for n in entry[1])):
            raise Unreadable(f"an array described as {entry!r:.80}")
        dtype = np.dtype(entry[0])
        size = dtype.itemsize * math.prod(entry[1])
        if at + size > len(blobs):
            raise Unreadable("arrays longer than the message")
        arrays.append(np.frombuffer(blobs, dtype=dtype, count=math.prod(entry[1]), offset=at).reshape(entry[1]).copy())
        at += size

    def decode(value):
        if value is None or type(value) in (bool, int, str):
            return value
        if type(value) is float:
            return value
        if type(value) is list:
            return [decode(v) for v in value]
        if type(value) is dict:
            tag = value.get("t")
            if tag == "float" and value.get("v") in ("nan", "inf", "-inf"):
                return float(value["v"])
            if tag == "array" and type(value.get("i")) is int and 0 <= value["i"] < len(arrays):
                return arrays[value["i"]]
            if tag == "tuple" and type(value.get("items")) is list:
                return tuple(decode(v) for v in value["items"])
            if tag == "dict" and type(value.get("items")) is list:
                pairs = [decode(pair) for pair in value["items"]]
                if not all(type(p) is list and len(p) == 2 and isinstance(p[0], (str, int, float, bool, tuple))
                           for p in pairs):
                    raise Unreadable("a dict with keys that are not plain")
                return {k: v for k, v in pairs}
            if tag == "tag" and type(value.get("kind")) is str:
                fields = decode(value.get("fields"))
                if type(fields) is not dict or not all(type(k) is str for k in fields):
                    raise Unreadable("a tag without fields")
                return Tag(value["kind"], **fields)
        raise Unreadable(f"{str(value)[:80]}")

    try:
        return decode(message.get("body"))
    except RecursionError:
        raise Unreadable("nested too deep") from None


def send(sock, obj) -> None:
    sock.sendall(pack(obj))


def _read(sock, count: int, deadline: float | None) -> bytes:
    chunks, left = [], count
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([sock], [], [], wait)[0]:
                raise Timeout()
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise Closed()
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(sock, deadline: float | None = None):
    """The next message from `sock`, waiting at most until `deadline` (time.monotonic())."""
    header_length, blobs_length = HEADER.unpack(_read(sock, HEADER.size, deadline))
    if header_length + blobs_length > MAX_BYTES:
        raise Unreadable(f"a message of {header_length + blobs_length:,} bytes")
    header = _read(sock, header_length, deadline)
    return unpack(header, _read(sock, blobs_length, deadline))
