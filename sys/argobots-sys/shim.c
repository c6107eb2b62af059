/* Null handles of Argobots as values the Rust side can read.
 *
 * Argobots defines ABT_XSTREAM_NULL and friends as casts of small constants whose values depend
 * on how the library was configured (NULL without error checks, 0x01, 0x03, ... with them), so
 * they cannot be written down in Rust. This file exports them as constant objects. */
#include <abt.h>

const ABT_xstream argobots_sys_xstream_null = ABT_XSTREAM_NULL;
const ABT_sched argobots_sys_sched_null = ABT_SCHED_NULL;
const ABT_pool argobots_sys_pool_null = ABT_POOL_NULL;
const ABT_thread argobots_sys_thread_null = ABT_THREAD_NULL;
const ABT_thread_attr argobots_sys_thread_attr_null = ABT_THREAD_ATTR_NULL;
const ABT_eventual argobots_sys_eventual_null = ABT_EVENTUAL_NULL;
const ABT_mutex argobots_sys_mutex_null = ABT_MUTEX_NULL;
const ABT_cond argobots_sys_cond_null = ABT_COND_NULL;
const ABT_sched_config argobots_sys_sched_config_null = ABT_SCHED_CONFIG_NULL;
