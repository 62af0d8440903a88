"""Blockchain address formats: EVM hex, Bitcoin base58check and bech32/bech32m."""

from __future__ import annotations

import pytest

from service.model.addresses import EVM_CHAINS, SUPPORTED, address_problem

EVM_ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"

BITCOIN_VALID = [
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",  # legacy P2PKH
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",  # legacy P2SH
    "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",  # segwit v0 (bech32)
    "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",  # BIP-350: upper case is fine
    "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",  # v1 (bech32m)
    "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr",  # taproot (BIP-86)
]

BITCOIN_INVALID = [
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb",  # base58check checksum broken
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLz",
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0a",  # 0 is not a base58 character
    "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn",  # testnet
    "1A1zP1eP5QGefi2DMPTfTL5SL",  # too short
    "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdp",  # bech32 checksum broken
    "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdQ",  # mixed case
    "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",  # testnet hrp
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",  # BIP-350: bech32m checksum on a v0 program
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",  # BIP-350: bech32 checksum on v1
    "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",  # 'o' is not a bech32 character
    "bc1gmk9yu",  # empty data
    "",
]

# BIP-350 invalid vectors whose checksum is right but whose witness program is not.
BITCOIN_INVALID_PROGRAM = [
    "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R",  # witness version 17
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",  # 41-byte program
    "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",  # 16-byte program for v0
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",  # more than 4 bits of padding
]


@pytest.mark.parametrize("chain", sorted(EVM_CHAINS))
def test_every_evm_chain_takes_0x_and_40_hex_digits_in_any_case(chain: str) -> None:
    assert address_problem(chain, EVM_ADDRESS) is None
    assert address_problem(chain, EVM_ADDRESS.lower()) is None
    assert address_problem(chain.lower(), EVM_ADDRESS) is None


@pytest.mark.parametrize(
    "address",
    [
        EVM_ADDRESS[:-1],
        EVM_ADDRESS + "0",
        EVM_ADDRESS[2:],
        "0X" + EVM_ADDRESS[2:],
        EVM_ADDRESS[:-1] + "g",
        " " + EVM_ADDRESS,
        "",
        "0x",
    ],
)
def test_an_evm_address_of_the_wrong_shape_is_refused(address: str) -> None:
    assert address_problem("ETH", address) == "must be 0x followed by 40 hex digits"


@pytest.mark.parametrize("address", BITCOIN_VALID)
def test_valid_bitcoin_addresses_are_accepted(address: str) -> None:
    assert address_problem("BTC", address) is None


@pytest.mark.parametrize("address", BITCOIN_INVALID)
def test_invalid_bitcoin_addresses_are_refused(address: str) -> None:
    assert address_problem("BTC", address) is not None


@pytest.mark.parametrize("address", BITCOIN_INVALID_PROGRAM)
def test_a_bech32_address_with_an_impossible_witness_program_is_refused(address: str) -> None:
    assert address_problem("BTC", address) is not None


def test_an_evm_address_is_not_a_bitcoin_address_and_the_reverse() -> None:
    assert address_problem("BTC", EVM_ADDRESS) is not None
    assert address_problem("ETH", BITCOIN_VALID[0]) is not None


def test_an_unsupported_chain_is_named_with_the_supported_ones() -> None:
    problem = address_problem("DOGE", "DH5yaieqoZN36fDVciNyRueRGvGLR3mr7L")
    assert problem is not None and problem.startswith("unsupported blockchain 'DOGE'")
    assert all(chain in problem for chain in SUPPORTED)
