"""Buttons as text, for a channel that has none: numbered options the customer answers.

The custom connector (and any channel whose renderer says a keyboard does not fit) gets the
question followed by one line per button, ``1. Yes``; the customer answers with the number
or the label. ``chosen_button`` reads such an answer, and also the label that Viber sends
when its button is pressed (its ``ActionBody`` is the label), so one function serves both.
"""

from __future__ import annotations

from engine.buttons.keyboard import Button, Keyboard, fold_label


def numbered_text(text: str, keyboard: Keyboard) -> str:
    """``text``, a blank line, then ``1. label`` per button in reading order.

    Buttons that are their own numbers (a rating's 1 to 5) go on one line, "1 · 2 · 3".
    """
    buttons = keyboard.buttons
    if all(button.label == str(number) for number, button in enumerate(buttons, 1)):
        options = " · ".join(button.label for button in buttons)
    else:
        options = "\n".join(f"{number}. {button.label}" for number, button in enumerate(buttons, 1))
    return f"{text}\n\n{options}" if text.strip() else options


def chosen_button(typed: str, keyboard: Keyboard) -> Button | None:
    """The button a typed answer names: its label, folded, or else its number (``2``, ``2.``).

    A label wins over a number, because it is what the customer sees on a button: with
    buttons labelled "3", "2", "1", typing "1" means the button "1". ``None`` when the text
    names no button: the caller treats it as an ordinary message.
    """
    folded = fold_label(typed)
    buttons = keyboard.buttons
    by_label = next((button for button in buttons if fold_label(button.label) == folded), None)
    if by_label is not None or not folded.isdecimal() or len(folded) > 3:
        return by_label
    number = int(folded)
    return buttons[number - 1] if 1 <= number <= len(buttons) else None
