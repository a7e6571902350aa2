import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wa_ray.crypto import DecryptError, MasterKey, decrypt, encrypt, is_current, key_id_of


def v1_blob(key: MasterKey, plaintext: bytes) -> bytes:
    """A blob as written before associated data existed (b"WAR1", the header alone authenticated)."""
    nonce, header = os.urandom(12), b"WAR1" + key.key_id
    return header + nonce + AESGCM(key.key).encrypt(nonce, plaintext, header)


def test_round_trip_and_key_id_header() -> None:
    key = MasterKey(os.urandom(32))
    blob = encrypt(key, b"state", b"auth-state:acme:s1")
    assert blob[:4] == b"WAR2" and key_id_of(blob) == key.key_id.decode()
    assert decrypt([key], blob, b"auth-state:acme:s1") == b"state"
    assert is_current(blob, key) and not is_current(blob, MasterKey(os.urandom(32)))


def test_tampering_and_wrong_key_are_refused() -> None:
    key, other = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    blob = bytearray(encrypt(key, b"state"))
    blob[-1] ^= 1
    with pytest.raises(DecryptError):
        decrypt([key], bytes(blob))
    with pytest.raises(DecryptError):
        decrypt([other], encrypt(key, b"state"))


@pytest.mark.parametrize("read_as", [b"auth-state:acme:s2", b"auth-state:evil:s1", b"", b"auth-state:acme:s1\x00"])
def test_a_blob_opens_only_for_the_owner_it_was_written_for(read_as: bytes) -> None:
    key = MasterKey(os.urandom(32))
    blob = encrypt(key, b"state", b"auth-state:acme:s1")
    with pytest.raises(DecryptError):
        decrypt([key], blob, read_as)


def test_relabelled_as_the_old_format_is_refused() -> None:
    """Turning a WAR2 blob into WAR1 (to drop its associated data) changes the authenticated header."""
    key = MasterKey(os.urandom(32))
    blob = encrypt(key, b"state", b"auth-state:acme:s1")
    with pytest.raises(DecryptError):
        decrypt([key], b"WAR1" + blob[4:], b"auth-state:evil:s1")


def test_old_format_blobs_still_open_and_are_not_current() -> None:
    key = MasterKey(os.urandom(32))
    blob = v1_blob(key, b"legacy")
    assert decrypt([key], blob, b"auth-state:acme:s1") == b"legacy"
    assert not is_current(blob, key)  # rotation rewrites it in the current format


def test_rotation_reads_old_blobs_with_the_old_key() -> None:
    old, new = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    assert decrypt([new, old], encrypt(old, b"x", b"k"), b"k") == b"x"


def test_a_key_never_shows_in_its_repr() -> None:
    key = MasterKey(os.urandom(32))
    assert key.b64() not in repr(key) and str(key.key) not in repr(key) and key.key_id.decode() in repr(key)
