"""What may leave a site: the closed vocabulary of skip reasons, word-parts of local names, the public vocabulary,
and the last-line guard that withholds a leaking value (it never raises). A leaf: it imports nothing of medprobe."""
