"""The single source of tb_layerview's version."""

VERSION = "0.1.0"
