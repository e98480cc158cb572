"""The resolver: from what shared objects need to the runtime wheels that satisfy them.

``needs`` reads what ELF files need (sonames and version nodes) and turns the sonames a
runtime distribution owns into requirements; ``candidates`` lists runtime wheels (installed,
a find-links directory, a simple-API index); ``host`` knows the target (glibc, platform
tags, CUDA driver); ``provider`` runs resolvelib over them and explains failures in words.
"""
