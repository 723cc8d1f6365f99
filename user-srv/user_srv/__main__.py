"""`python -m user_srv` starts user-srv."""

from user_srv.service import main

main()
