"""`python -m data_srv` starts data-srv."""

from data_srv.service import main

main()
