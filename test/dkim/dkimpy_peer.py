"""Runs dkimpy for Herald's interop tests.

Reads one JSON request from stdin: {"zone": {name: value}, "jobs": [...]}, where a job is
{"op": "verify", "path": P} or {"op": "sign", "path": P, "selector": S, "domain": D,
"key": K, "algorithm": A, "canonicalization": "h/b"}. Writes one JSON list of results to
stdout, in job order. Key lookups read the zone of the request, never the network.
"""
import json
import sys

import dkim


def main():
    request = json.load(sys.stdin)
    zone = {name.lower().rstrip('.'): value.encode() for name, value in request['zone'].items()}

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return zone.get(name.lower().rstrip('.'))

    results = []
    for job in request['jobs']:
        with open(job['path'], 'rb') as handle:
            message = handle.read()
        try:
            if job['op'] == 'verify':
                results.append({'ok': verify_all(message, dnsfunc)})
            else:
                header, body = job['canonicalization'].split('/')
                signature = dkim.sign(
                    message,
                    job['selector'].encode(),
                    job['domain'].encode(),
                    job['key'].encode(),
                    canonicalize=(header.encode(), body.encode()),
                    signature_algorithm=job['algorithm'].encode(),
                )
                results.append({'signature': signature.decode()})
        except Exception as error:  # noqa: BLE001 - report every failure to the test
            results.append({'error': '%s: %s' % (type(error).__name__, error)})
    json.dump(results, sys.stdout)


def verify_all(message, dnsfunc):
    """Returns one boolean per DKIM-Signature, top to bottom."""
    checker = dkim.DKIM(message)
    count = sum(1 for name, _ in checker.headers if name.lower() == b'dkim-signature')
    return [verify_one(checker, index, dnsfunc) for index in range(count)]


def verify_one(checker, index, dnsfunc):
    # dkimpy raises ValidationError for some failures (a body hash mismatch) and returns False
    # for others; both are a failed verification here.
    try:
        return bool(checker.verify(idx=index, dnsfunc=dnsfunc))
    except dkim.ValidationError:
        return False


if __name__ == '__main__':
    main()
