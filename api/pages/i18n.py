"""Bilingual messages: every key has Chinese and English; areas register their own keys.

Chinese is the default language; ``?lang=en`` (remembered in a cookie) switches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["LANGS", "MESSAGES", "register", "translate"]

LANGS: Final = ("zh", "en")

MESSAGES: dict[str, tuple[str, str]] = {
    "site.name": ("智信", "zhixin"),
    "site.tagline": (
        "禅城区 身份与信用链上服务",
        "Chancheng district identity and credit ledger",
    ),
    "nav.home": ("首页", "Home"),
    "nav.credit": ("企业信用查询", "Entity credit query"),
    "nav.lists": ("红黑名单公示", "Red and black lists"),
    "nav.me": ("我的信用", "My credit"),
    "nav.agency": ("部门工作台", "Agency console"),
    "nav.audit": ("审计", "Audit"),
    "nav.office": ("信用办", "Credit office"),
    "nav.signin": ("登录", "Sign in"),
    "nav.signout": ("退出", "Sign out"),
    "nav.lang": ("English", "中文"),
    "nav.skip": ("跳到正文", "Skip to content"),
    "session.as": ("已登录", "Signed in as"),
    "error.title": ("无法完成", "Could not complete"),
    "error.back": ("返回", "Back"),
    "error.signin": ("请先登录", "Please sign in first"),
    "signin.title": ("登录", "Sign in"),
    "signin.chain.title": (
        "部门、审计与规则发布人员：以链上密钥登录 (EIP-4361)",
        "Agency staff, auditors and rule publishers: sign in with your chain key (EIP-4361)",
    ),
    "signin.chain.help": (
        "选择您的加密密钥文件并输入密码。密钥只在本浏览器中解锁并签名，不会发送到服务器。",
        "Choose your encrypted keystore file and enter its password. The key is unlocked and"
        " signs only in this browser; it is never sent to the server.",
    ),
    "signin.keystore": ("密钥文件 (keystore JSON)", "Keystore file (JSON)"),
    "signin.password": ("密码", "Password"),
    "signin.submit": ("签名并登录", "Sign and sign in"),
    "signin.did.title": (
        "市民：以数字身份钱包登录 (DID)",
        "Citizens: sign in with your identity wallet (DID)",
    ),
    "signin.did.help": (
        "选择您的钱包文件 (zhixin wallet)。浏览器用您的 Ed25519 密钥对服务器的质询签署可验证"
        "表述；密钥不离开本机。",
        "Choose your wallet file (zhixin wallet). The browser signs a verifiable presentation"
        " over the server's challenge with your Ed25519 key; the key never leaves this device.",
    ),
    "signin.wallet": ("钱包文件", "Wallet file"),
    "signin.demo": ("演示身份 (仅限演示)", "Demo identities (demo only)"),
    "signin.demo.help": (
        "演示模式：可载入演示身份的密钥文件，密码为",
        "Demo mode: load a demo identity's keystore; its password is",
    ),
    "signin.working": ("正在签名…", "Signing…"),
    "signin.ok": ("登录成功", "Signed in"),
    "home.public": ("公众服务", "For the public"),
    "home.citizen": ("市民服务", "For citizens"),
    "home.agency": ("政府部门", "For agencies"),
    "home.audit": ("审计与监督", "Audit and oversight"),
    "home.verify": ("核验身份凭证 (窗口人员)", "Verify an identity credential (service window)"),
    "common.submit": ("提交", "Submit"),
    "common.none": ("暂无", "None"),
    "common.category": ("类别", "Category"),
    "common.subject": ("主体", "Subject"),
    "common.agency": ("部门", "Agency"),
    "common.status": ("状态", "Status"),
    "common.date": ("日期", "Date"),
    "common.period": ("期限", "Period"),
    "common.reason": ("原因", "Reason"),
    "common.legal_basis": ("法律依据", "Legal basis"),
    "common.loading": ("加载中…", "Loading…"),
}


def register(messages: Mapping[str, tuple[str, str]]) -> None:
    """Add an area's messages; a key registered twice with other text is a programming error."""
    for key, pair in messages.items():
        old = MESSAGES.get(key)
        if old is not None and old != pair:
            raise ValueError(f"message {key!r} registered twice with different text")
        MESSAGES[key] = pair


def translate(key: str, lang: str) -> str:
    """The message in ``lang``; an unknown key shows itself (visible in tests, never a crash)."""
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "en" else pair[0]
