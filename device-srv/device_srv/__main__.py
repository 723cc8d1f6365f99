"""`python -m device_srv` starts device-srv."""

from device_srv.service import main

main()
