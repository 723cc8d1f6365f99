"""`python -m token_srv` starts token-srv."""

from token_srv.service import main

main()
