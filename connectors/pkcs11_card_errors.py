"""What the user is told when a CPS card says no through PKCS#11: the `bridge.card_port` errors
for a refused PIN, a removed card, a session logged out or a failed call, and the PIN state
read from the token flags (PKCS#11 gives no exact count of tries left).

The session (`connectors.pkcs11_session`) decides which applies and updates its own state.
"""

from __future__ import annotations

from collections.abc import Callable

import pkcs11
import structlog
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11

from bridge.card_port import CardAbsent, CardBlocked, CardError, NotLoggedIn, WrongPin

log = structlog.get_logger("dmp_bridge.card")

# What the module answers when the card, the reader or the session is gone.
GONE = (
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.SessionClosed,
    p11.SessionHandleInvalid,
    p11.SlotIDInvalid,
    p11.DeviceError,
)


def not_logged_in() -> NotLoggedIn:
    return NotLoggedIn(
        "Le code PIN de la carte CPS n'a pas encore été saisi : saisissez-le dans le tableau de "
        "bord (page Carte) ou avec « dmp-bridge card login »."
    )


def card_absent(reader: str) -> CardAbsent:
    return CardAbsent(
        f"La carte CPS n'est plus accessible dans le lecteur « {reader} » (carte retirée ou "
        "lecteur débranché). Réinsérez la carte et saisissez à nouveau le code PIN ; les envois "
        "reprennent ensuite."
    )


def pin_state_from_flags(flags: TokenFlag, pin_tries: int | None) -> tuple[int | None, bool]:
    """(tries left, blocked) from the token flags; PKCS#11 gives no exact count."""
    if flags & TokenFlag.USER_PIN_LOCKED:
        return 0, True
    if flags & TokenFlag.USER_PIN_FINAL_TRY:
        return 1, False
    if flags & TokenFlag.USER_PIN_COUNT_LOW:
        # At least one wrong PIN and more than one try left: exact only for a 3-try card.
        return (2 if pin_tries == 3 else None), False
    return pin_tries, False


def pin_refusal(
    error: p11.PKCS11Error,
    *,
    reader: str,
    pin_tries: int | None,
    token_now: Callable[[], pkcs11.Token | None],
) -> CardError | None:
    """The CardError for a C_Login that refused the PIN (wrong, blocked, malformed, cancelled);
    None when `error` is no PIN refusal (then it is a failed call, see `operation_failed`).
    `token_now` reads the token again, only to count the tries left after a wrong PIN."""
    if isinstance(error, p11.PinIncorrect):
        token = token_now()
        tries_left = (pin_state_from_flags(token.flags, pin_tries)[0]
                      if token is not None else None)
        log.warning("card_pin_wrong", reader=reader, tries_left=tries_left)
        if token is not None and token.flags & TokenFlag.USER_PIN_LOCKED:
            return CardBlocked()
        return WrongPin(tries_left)
    if isinstance(error, p11.PinLocked):
        log.warning("card_blocked", reader=reader)
        return CardBlocked()
    if isinstance(error, p11.PinLenRange | p11.PinInvalid):
        return CardError(
            "Le module de la carte a refusé ce code PIN sans le vérifier : il n'a pas la "
            "bonne longueur ou contient des caractères non admis. Vérifiez le code et "
            "saisissez-le à nouveau.",
            code="CARD_PIN_FORMAT",
        )
    if isinstance(error, p11.FunctionCancelled):
        return CardError(
            "La saisie du code PIN a été annulée sur le lecteur. Recommencez la connexion "
            "de la carte quand vous êtes prêt.",
            code="CARD_PIN_CANCELLED",
        )
    return None


def operation_failed(error: p11.PKCS11Error, reader: str) -> CardError:
    """A PKCS#11 call failed with the card still there: the user retries with the card
    reinserted."""
    log.error("card_operation_failed", reader=reader, error=type(error).__name__)
    return CardError(
        f"La carte a refusé l'opération ({type(error).__name__}). Retirez et réinsérez la "
        "carte ; si l'erreur persiste, vérifiez la version de la Cryptolib CPS.",
        code="CARD_OPERATION_FAILED",
    )
