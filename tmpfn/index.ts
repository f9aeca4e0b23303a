import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { loadTwoTower } from 'am-ml/edge';
await tf.setBackend('cpu');
console.log(tf.version.tfjs, tf.getBackend(), typeof z.object, typeof loadTwoTower);
