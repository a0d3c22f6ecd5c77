#!/bin/sh
# The hpsearch image's entrypoint (installed as /usr/local/bin/hpsearch-entrypoint).
#
#   hpsearch-entrypoint chief --port 8000 --study FILE      -> exec hpsearch chief ...
#   hpsearch-entrypoint worker -- python trials/mnist.py    -> exec hpsearch worker ...
#   hpsearch-entrypoint study list                          -> any other hpsearch command
#   hpsearch-entrypoint python trials/mnist.py ...          -> anything else runs as given
#
# A worker in a Kubernetes Indexed Job gets its id from the pod's completion index:
# KERASTUNER_TUNER_ID=worker<JOB_COMPLETION_INDEX> (prefix: $HPSEARCH_WORKER_PREFIX), unless
# KERASTUNER_TUNER_ID is already set; `hpsearch worker --worker-id` still wins over both. This
# holds for any command but `chief`, so a stock Keras Tuner script run by an Indexed Job
# (python trials/keras_tuner_mnist.py) gets a unique tuner id too. A stable id per index means
# a replacement pod of the same index is the same worker to the chief, which hands it back
# the trial its predecessor was running.
set -eu

if [ "$#" -eq 0 ]; then
    set -- --help
fi

if [ "$1" != "chief" ] && [ -z "${KERASTUNER_TUNER_ID:-}" ] && [ -n "${JOB_COMPLETION_INDEX:-}" ]; then
    case "$JOB_COMPLETION_INDEX" in
        *[!0-9]*)
            echo "hpsearch-entrypoint: JOB_COMPLETION_INDEX must be a non-negative integer," \
                "got '$JOB_COMPLETION_INDEX'; set KERASTUNER_TUNER_ID or pass --worker-id" >&2
            exit 2
            ;;
    esac
    KERASTUNER_TUNER_ID="${HPSEARCH_WORKER_PREFIX:-worker}${JOB_COMPLETION_INDEX}"
    export KERASTUNER_TUNER_ID
    echo "hpsearch-entrypoint: worker id ${KERASTUNER_TUNER_ID} (from JOB_COMPLETION_INDEX)" >&2
fi

# The hpsearch subcommands (tests/deploy checks this list against the CLI), and its options.
case "$1" in
    chief | worker | study | trials | best | db | demo | dashboard | vertex | export | import \
        | tensorboard | -*)
        exec hpsearch "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
