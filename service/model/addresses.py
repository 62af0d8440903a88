"""Blockchain address formats: EVM hex addresses and Bitcoin base58check / bech32(m)."""

from __future__ import annotations

import hashlib
import re

EVM_CHAINS = frozenset(
    {
        "ETH",
        "AVAX",
        "MATIC",
        "POL",
        "BSC",
        "BNB",
        "ARB",
        "OP",
        "BASE",
        "FTM",
        "CELO",
        "GNO",
        "LINEA",
        "SCROLL",
        "ZKSYNC",
    }
)
BTC_CHAINS = frozenset({"BTC"})
SUPPORTED = EVM_CHAINS | BTC_CHAINS

_EVM = re.compile(r"^0x[0-9a-fA-F]{40}$")
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def address_problem(symbol: str, address: str) -> str | None:
    """Why `address` is not valid on `symbol`'s chain, or None when it is."""
    chain = symbol.upper()
    if chain in EVM_CHAINS:
        return None if _EVM.match(address) else "must be 0x followed by 40 hex digits"
    if chain in BTC_CHAINS:
        if address[:3].lower() == "bc1":
            return None if _bech32_ok(address) else "is not a valid bech32 Bitcoin address"
        return None if _base58check_ok(address) else "is not a valid Bitcoin address"
    return f"unsupported blockchain {symbol!r} (supported: {', '.join(sorted(SUPPORTED))})"


def _base58check_ok(address: str) -> bool:
    if not 25 <= len(address) <= 35 or address[0] not in "13":
        return False
    number = 0
    for char in address:
        index = _B58.find(char)
        if index < 0:
            return False
        number = number * 58 + index
    raw = number.to_bytes(25, "big") if number.bit_length() <= 200 else b""
    if len(raw) != 25:
        return False
    payload, checksum = raw[:-4], raw[-4:]
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] == checksum


def _polymod(values: list[int]) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= generator[i] if (top >> i) & 1 else 0
    return chk


def _bech32_ok(address: str) -> bool:
    if address.lower() != address and address.upper() != address:
        return False  # mixed case is invalid in bech32
    addr = address.lower()
    hrp, _, data = addr.rpartition("1")
    if hrp != "bc" or not 14 <= len(addr) <= 90 or len(data) < 7:
        return False
    if any(c not in _BECH32 for c in data):
        return False
    values = [_BECH32.index(c) for c in data]
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    const = _polymod(expanded + values)
    witness_version = values[0]
    # bech32 for segwit v0, bech32m (BIP-350) for v1+
    if const != (1 if witness_version == 0 else 0x2BC830A3) or witness_version > 16:
        return False
    program = _five_to_eight_bits(values[1:-6])
    if program is None or not 2 <= len(program) <= 40:
        return False
    return witness_version != 0 or len(program) in (20, 32)


def _five_to_eight_bits(data: list[int]) -> bytes | None:
    """BIP-173 convertbits(data, 5, 8, pad=False); None when the padding is invalid."""
    acc = bits = 0
    out = bytearray()
    for value in data:
        acc = (acc << 5) | value
        bits += 5
        while bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc << (8 - bits)) & 0xFF:
        return None
    return bytes(out)
