#!/usr/bin/python3
"""Every key of a chart's values.yaml has a comment line right above it (STYLE.md).

usage: check_values_comments.py values.yaml

Keys inside free-form Kubernetes objects (resources, security contexts,
tolerations, the NCCL environment, the cascade.json object) are described by
their parent's comment and are exempt.
"""
import re
import sys

FREE_FORM = {"resources", "podSecurityContext", "securityContext", "tolerations", "ncclEnv",
             "cascadeConfig", "nodeSelector", "affinity", "podAnnotations", "labels"}
KEY = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):")


def main():
    path = sys.argv[1]
    stack = []  # (indent, key)
    previous = ""
    missing = []
    for number, line in enumerate(open(path), 1):
        if not line.strip():
            previous = ""
            continue
        m = KEY.match(line)
        if m and not line.lstrip().startswith("#"):
            indent, key = len(m.group(1)), m.group(2)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            exempt = any(k in FREE_FORM for _, k in stack)
            if not exempt and not previous.lstrip().startswith("#"):
                missing.append(f"{path}:{number}: {'.'.join([k for _, k in stack] + [key])}")
            stack.append((indent, key))
        previous = line
    if missing:
        print("check-deploy: FAIL: values keys without a comment:\n  " + "\n  ".join(missing), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
