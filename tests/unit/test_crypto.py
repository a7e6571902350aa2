import os

import pytest

from sessions.crypto import DecryptError, MasterKey, decrypt, encrypt, key_id_of


def test_round_trip_and_key_id_header() -> None:
    key = MasterKey(os.urandom(32))
    blob = encrypt(key, b"state")
    assert blob[:4] == b"WAR1" and key_id_of(blob) == key.key_id.decode()
    assert decrypt([key], blob) == b"state"


def test_tampering_and_wrong_key_are_refused() -> None:
    key, other = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    blob = bytearray(encrypt(key, b"state"))
    blob[-1] ^= 1
    with pytest.raises(DecryptError):
        decrypt([key], bytes(blob))
    with pytest.raises(DecryptError):
        decrypt([other], encrypt(key, b"state"))


def test_rotation_reads_old_blobs_with_the_old_key() -> None:
    old, new = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    assert decrypt([new, old], encrypt(old, b"x")) == b"x"
