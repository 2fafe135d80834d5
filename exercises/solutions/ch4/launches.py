"""Exercise 4.8, a worked solution.

Per layer: forward 7 (two rmsnorms with the residual, the q/k/v, output, fc1 and fc2 matmuls,
attention) and backward 11 (dx and dW for each of the 4 matmuls, attention, two rmsnorms): 18.
The rest is once per step: 29 - 18 = 11. At three layers: 11 + 3 x 18 = 65.
"""

LAUNCHES_AT_THREE_LAYERS = 65  # your number

if __name__ == "__main__":
    print(f"your prediction: {LAUNCHES_AT_THREE_LAYERS}; python exercises/check.py 4.8 checks it")
