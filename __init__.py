"""renraku: intake of どこでも連絡帳 registration sheets."""

__version__ = "0.1.0"
