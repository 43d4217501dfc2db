from pallet.runtime.cli import main

main()
